// Package geotest writes small MaxMind-format databases for tests.
package geotest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// WriteDB builds an mmdb file in t.TempDir() from CIDR → record and
// returns its path. Documentation and other reserved ranges are allowed,
// as tests use them.
func WriteDB(t testing.TB, opts mmdbwriter.Options, records map[string]mmdbtype.Map) string {
	t.Helper()
	opts.IncludeReservedNetworks = true
	w, err := mmdbwriter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Insert(n, rec); err != nil {
			t.Fatalf("insert %s: %v", cidr, err)
		}
	}
	path := filepath.Join(t.TempDir(), strings.ReplaceAll(opts.DatabaseType, " ", "_")+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Country is a GeoLite2-Country record.
func Country(cc string) mmdbtype.Map {
	return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}
}

// WriteCountryDB writes a GeoLite2-Country database mapping CIDR → ISO code.
func WriteCountryDB(t testing.TB, nets map[string]string) string {
	t.Helper()
	recs := make(map[string]mmdbtype.Map, len(nets))
	for cidr, cc := range nets {
		recs[cidr] = Country(cc)
	}
	return WriteDB(t, mmdbwriter.Options{DatabaseType: "GeoLite2-Country"}, recs)
}
