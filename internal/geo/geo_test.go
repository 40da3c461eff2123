package geo

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/apiguard/apiguard/internal/geo/geotest"
)

// writeDB builds an mmdb file in t.TempDir() from CIDR -> record.
func writeDB(t testing.TB, opts mmdbwriter.Options, records map[string]mmdbtype.Map) string {
	t.Helper()
	return geotest.WriteDB(t, opts, records)
}

func country(cc string) mmdbtype.Map {
	return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}
}

func asn(n uint32, org string) mmdbtype.Map {
	return mmdbtype.Map{
		"autonomous_system_number":       mmdbtype.Uint32(n),
		"autonomous_system_organization": mmdbtype.String(org),
	}
}

func countryDB(t testing.TB, opts mmdbwriter.Options) string {
	if opts.DatabaseType == "" {
		opts.DatabaseType = "GeoLite2-Country"
	}
	return writeDB(t, opts, map[string]mmdbtype.Map{
		"2.160.0.0/12": country("DE"),
		"2003::/19":    country("DE"),
		// A City-shaped record: extra fields are skipped.
		"81.2.69.0/24": {
			"city":      mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("London")}},
			"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
			"country": mmdbtype.Map{
				"iso_code": mmdbtype.String("GB"),
				"names":    mmdbtype.Map{"en": mmdbtype.String("United Kingdom"), "de": mmdbtype.String("Vereinigtes Königreich")},
			},
			"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("GB")},
		},
		// Only the registration country is known (anycast).
		"198.51.100.0/24": {"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("US")}},
		// A third-party database writing lower case.
		"2001:db8:1::/48": country("fr"),
		// Garbage codes are dropped.
		"203.0.113.0/24": country("Germany"),
	})
}

func asnDB(t testing.TB) string {
	return writeDB(t, mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 24}, map[string]mmdbtype.Map{
		"2.160.0.0/12": asn(3320, "Deutsche Telekom AG"),
		"2003::/19":    asn(3320, "Deutsche Telekom AG"),
		"81.2.69.0/24": asn(20712, "Andrews & Arnold Ltd"),
	})
}

func TestLookup(t *testing.T) {
	t.Parallel()
	db, err := OpenFiles(Files{Country: countryDB(t, mmdbwriter.Options{}), ASN: asnDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	dt := Info{Country: "DE", ASN: 3320, ASOrg: "Deutsche Telekom AG"}
	for _, tc := range []struct {
		desc  string
		ip    string
		want  Info
		found bool
	}{
		{"ipv4", "2.160.1.1", dt, true},
		{"ipv6", "2003:e1:1234::1", dt, true},
		{"ipv4-mapped ipv6", "::ffff:2.160.1.1", dt, true},
		{"ipv6 with zone", "2003::1%eth0", dt, true},
		{"city-shaped record", "81.2.69.160", Info{Country: "GB", ASN: 20712, ASOrg: "Andrews & Arnold Ltd"}, true},
		{"registered country fallback", "198.51.100.7", Info{Country: "US"}, true},
		{"lower-case code normalised", "2001:db8:1::5", Info{Country: "FR"}, true},
		{"malformed code dropped", "203.0.113.9", Info{}, false},
		{"private address", "10.1.2.3", Info{}, false},
		{"unknown ipv6", "2001:db8:2::1", Info{}, false},
		{"loopback", "::1", Info{}, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tc.ip)
			// Twice: the first decodes, the second is served from the cache.
			for range 2 {
				got, found := db.Lookup(ip)
				if got != tc.want || found != tc.found {
					t.Fatalf("Lookup(%s) = %+v, %v; want %+v, %v", tc.ip, got, found, tc.want, tc.found)
				}
			}
			if c := db.Country(ip); c != tc.want.Country {
				t.Fatalf("Country(%s) = %q, want %q", tc.ip, c, tc.want.Country)
			}
		})
	}
	if info, found := db.Lookup(netip.Addr{}); found || info != (Info{}) {
		t.Fatalf("Lookup(zero Addr) = %+v, %v", info, found)
	}
}

// Without IPv4 aliasing, an IPv6 database has no ::ffff:0:0/96 subtree:
// mapped addresses are found only because Lookup unmaps them.
func TestLookupMappedWithoutAliasing(t *testing.T) {
	t.Parallel()
	db, err := Open(countryDB(t, mmdbwriter.Options{DisableIPv4Aliasing: true}))
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"2.160.1.1", "::ffff:2.160.1.1"} {
		if got := db.Country(netip.MustParseAddr(ip)); got != "DE" {
			t.Errorf("Country(%s) = %q, want DE", ip, got)
		}
	}
}

func TestLookupIPv4OnlyDatabase(t *testing.T) {
	t.Parallel()
	path := writeDB(t, mmdbwriter.Options{DatabaseType: "GeoLite2-Country", IPVersion: 4}, map[string]mmdbtype.Map{
		"2.160.0.0/12": country("DE"),
	})
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := db.Country(netip.MustParseAddr("::ffff:2.160.0.1")); got != "DE" {
		t.Errorf("mapped address: %q, want DE", got)
	}
	// An IPv6 address in an IPv4 database is an error inside the reader;
	// here it is simply unknown.
	if info, found := db.Lookup(netip.MustParseAddr("2003::1")); found {
		t.Errorf("ipv6 in an ipv4 database found %+v", info)
	}
}

func TestASNOnly(t *testing.T) {
	t.Parallel()
	db, err := OpenFiles(Files{ASN: asnDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	got, found := db.Lookup(netip.MustParseAddr("2.160.0.1"))
	if !found || got != (Info{ASN: 3320, ASOrg: "Deutsche Telekom AG"}) {
		t.Fatalf("got %+v, %v", got, found)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	valid := countryDB(t, mmdbwriter.Options{})
	data, err := os.ReadFile(valid)
	if err != nil {
		t.Fatal(err)
	}
	// Overwrite the search tree (the start of the file) with pointers far
	// beyond the data section.
	badTree := append([]byte(nil), data...)
	for i := range 256 {
		badTree[i] = 0xff
	}
	asnPath := asnDB(t)
	for _, tc := range []struct {
		desc  string
		files Files
		want  string
	}{
		{"nothing", Files{}, "no database file"},
		{"missing", Files{Country: filepath.Join(dir, "nope.mmdb")}, "no such file"},
		{"directory", Files{Country: dir}, "not a regular file"},
		{"empty", Files{Country: write("empty.mmdb", nil)}, "is empty"},
		{"garbage", Files{Country: write("garbage.mmdb", []byte(strings.Repeat("not a database ", 100)))}, "not a valid MaxMind DB file"},
		{"truncated", Files{Country: write("truncated.mmdb", data[:len(data)/2])}, "not a valid MaxMind DB file"},
		{"corrupt tree", Files{Country: write("tree.mmdb", badTree)}, "corrupt search tree"},
		{"asn as country", Files{Country: asnPath}, "configure it as the asn database"},
		{"country as asn", Files{ASN: valid}, "configure it as the country database"},
		{"bad asn file", Files{Country: valid, ASN: write("bad-asn.mmdb", []byte("x"))}, "asn database"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			db, err := OpenFiles(tc.files)
			if err == nil {
				t.Fatalf("OpenFiles(%+v) succeeded", tc.files)
			}
			if db != nil {
				t.Error("non-nil DB with an error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "geo: ") {
				t.Fatalf("error %q, want it to start with \"geo: \" and contain %q", err, tc.want)
			}
		})
	}
}

// Close while lookups run: every lookup either answers from the database
// or finds nothing, and -race sees no race.
func TestCloseConcurrent(t *testing.T) {
	t.Parallel()
	db, err := OpenFiles(Files{Country: countryDB(t, mmdbwriter.Options{}), ASN: asnDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("2.160.1.1")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				info, found := db.Lookup(ip)
				if found && info.Country != "DE" && info.ASN != 3320 {
					errs <- "wrong answer"
					return
				}
			}
		})
	}
	_ = db.Close()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if _, found := db.Lookup(ip); found {
		t.Fatal("lookup after Close found something")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	db, err := OpenFiles(Files{Country: countryDB(t, mmdbwriter.Options{}), ASN: asnDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	ips := []netip.Addr{netip.MustParseAddr("2.160.1.1"), netip.MustParseAddr("2003::1"), netip.MustParseAddr("10.0.0.1")}
	n := testing.AllocsPerRun(100, func() {
		for _, ip := range ips {
			db.Lookup(ip)
		}
	})
	if n != 0 {
		t.Fatalf("Lookup allocates %v times per 3 lookups", n)
	}
}

func BenchmarkLookup(b *testing.B) {
	db, err := OpenFiles(Files{Country: countryDB(b, mmdbwriter.Options{}), ASN: asnDB(b)})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, ip string }{
		{"ipv4", "2.160.1.1"},
		{"ipv6", "2003:e1::1"},
		{"miss", "10.0.0.1"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					db.Lookup(ip)
				}
			})
		})
	}
}
