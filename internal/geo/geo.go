package geo

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	maxminddb "github.com/oschwald/maxminddb-golang/v2"
)

// Info is what the databases know about one address. Zero fields are
// unknown: Country "" (no country database, or the address is in no
// network of it), ASN 0.
type Info struct {
	Country string // ISO 3166-1 alpha-2, upper case, e.g. "DE"
	ASN     uint32 // autonomous system number
	ASOrg   string // autonomous system organisation
}

// DB answers lookups from a country (or city) database, an ASN database,
// or both. It is safe for concurrent use, including Close while lookups are
// in flight: a lookup racing with Close either completes against the old
// data or reports nothing found.
type DB struct {
	country atomic.Pointer[source]
	asn     atomic.Pointer[source]
}

// Files names the database files of a DB. At least one must be set.
type Files struct {
	// Country is a GeoLite2/GeoIP2 Country or City database (or any mmdb
	// whose records carry country.iso_code).
	Country string `yaml:"country,omitempty"`
	// ASN is a GeoLite2 ASN (or GeoIP2 ISP) database, optional.
	ASN string `yaml:"asn,omitempty"`
}

// maxFileSize bounds what Open reads into memory. GeoIP2 City is ~70 MB;
// anything beyond this is not a geo database we expect.
const maxFileSize = 2 << 30

// Open opens a country (or city) database.
func Open(path string) (*DB, error) {
	return OpenFiles(Files{Country: path})
}

// OpenFiles opens the databases named in f.
func OpenFiles(f Files) (*DB, error) {
	if f.Country == "" && f.ASN == "" {
		return nil, errors.New("geo: no database file given")
	}
	db := &DB{}
	if f.Country != "" {
		s, err := openSource(f.Country, kindCountry)
		if err != nil {
			return nil, err
		}
		db.country.Store(s)
	}
	if f.ASN != "" {
		s, err := openSource(f.ASN, kindASN)
		if err != nil {
			return nil, err
		}
		db.asn.Store(s)
	}
	return db, nil
}

// Close releases the databases; later lookups find nothing. The memory is
// freed by the garbage collector once lookups in flight have finished.
func (db *DB) Close() error {
	db.country.Store(nil)
	db.asn.Store(nil)
	return nil
}

// Lookup returns what the databases know about ip and whether they know
// anything. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are looked up as
// the IPv4 address they carry, whatever the database's own aliasing, and
// zones are ignored. A record that cannot be decoded (a corrupt data
// section) counts as not found: geo data is advisory and must never fail a
// request.
func (db *DB) Lookup(ip netip.Addr) (Info, bool) {
	var info Info
	if !ip.IsValid() {
		return info, false
	}
	ip = ip.Unmap().WithZone("")
	found := false
	if s := db.country.Load(); s != nil {
		if r, ok := s.lookup(ip); ok {
			info.Country = r.country
			found = found || r.country != ""
		}
	}
	if s := db.asn.Load(); s != nil {
		if r, ok := s.lookup(ip); ok {
			info.ASN, info.ASOrg = r.asn, r.asOrg
			found = found || r.asn != 0 || r.asOrg != ""
		}
	}
	return info, found
}

// Country is Lookup(ip).Country.
func (db *DB) Country(ip netip.Addr) string {
	info, _ := db.Lookup(ip)
	return info.Country
}

type kind uint8

const (
	kindCountry kind = iota
	kindASN
)

// source is one opened database with its record cache.
type source struct {
	r    *maxminddb.Reader
	kind kind
	// cache is direct-mapped by record offset: slot i holds the last
	// record decoded whose offset hashes to i. Readers only Load, so hits
	// never write shared memory and scale across cores; a miss decodes
	// and stores a new immutable entry (a collision merely re-decodes).
	cache [cacheSlots]atomic.Pointer[record]
}

// cacheSlots covers every distinct record of a country database and the
// busy part of a city or ASN one, for 8 bytes a slot.
const (
	cacheBits  = 14
	cacheSlots = 1 << cacheBits
)

type record struct {
	off     uintptr
	country string
	asn     uint32
	asOrg   string
}

// countryRecord is the part of a GeoLite2/GeoIP2 Country or City record we
// read; the decoder skips every other field.
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

type asnRecord struct {
	ASN   uint32 `maxminddb:"autonomous_system_number"`
	ASOrg string `maxminddb:"autonomous_system_organization"`
}

func openSource(path string, k kind) (*source, error) {
	what := "country"
	if k == kindASN {
		what = "asn"
	}
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("geo: %s database: %w", what, err)
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("geo: %s database %s: not a valid MaxMind DB file: %w", what, path, err)
	}
	// A quick sanity check instead of Reader.Verify, which walks the whole
	// tree and data section (seconds for a City database) on every reload.
	md := r.Metadata
	if md.IPVersion != 4 && md.IPVersion != 6 || md.NodeCount == 0 {
		return nil, fmt.Errorf("geo: %s database %s: invalid metadata (ip_version %d, node_count %d)", what, path, md.IPVersion, md.NodeCount)
	}
	// Catch the easy misconfiguration of swapped files.
	typ := strings.ToLower(md.DatabaseType)
	if k == kindCountry && strings.Contains(typ, "asn") {
		return nil, fmt.Errorf("geo: country database %s is of type %q: configure it as the asn database", path, md.DatabaseType)
	}
	if k == kindASN && (strings.Contains(typ, "country") || strings.Contains(typ, "city")) {
		return nil, fmt.Errorf("geo: asn database %s is of type %q: configure it as the country database", path, md.DatabaseType)
	}
	// Probe one lookup per family so a corrupt search tree fails here,
	// at load, rather than silently on requests.
	for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{8, 8, 8, 8}), netip.MustParseAddr("2001:4860:4860::8888")} {
		if a.Is6() && md.IPVersion == 4 {
			continue
		}
		if err := r.Lookup(a).Err(); err != nil {
			return nil, fmt.Errorf("geo: %s database %s: corrupt search tree: %w", what, path, err)
		}
	}
	return &source{r: r, kind: k}, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a geo database may have", path, st.Size(), int64(maxFileSize))
	}
	data := make([]byte, st.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

func (s *source) lookup(ip netip.Addr) (*record, bool) {
	res := s.r.Lookup(ip)
	if !res.Found() {
		return nil, false
	}
	off := res.Offset()
	slot := &s.cache[(uint64(off)*0x9E3779B97F4A7C15)>>(64-cacheBits)] // Fibonacci hashing
	if r := slot.Load(); r != nil && r.off == off {
		return r, true
	}
	r := &record{off: off}
	switch s.kind {
	case kindCountry:
		var c countryRecord
		if res.Decode(&c) != nil {
			return nil, false
		}
		// country is where the network is used; registered_country,
		// where it is registered, stands in when MaxMind has no location
		// (anycast, some satellite and mobile ranges).
		r.country = normCountry(c.Country.ISOCode)
		if r.country == "" {
			r.country = normCountry(c.RegisteredCountry.ISOCode)
		}
	case kindASN:
		var a asnRecord
		if res.Decode(&a) != nil {
			return nil, false
		}
		r.asn, r.asOrg = a.ASN, a.ASOrg
	}
	slot.Store(r)
	return r, true
}

// normCountry upper-cases a two-letter code and drops anything else, so a
// Fence never sees a malformed code from a third-party database.
func normCountry(s string) string {
	if len(s) != 2 {
		return ""
	}
	a, b := upper(s[0]), upper(s[1])
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return ""
	}
	if a == s[0] && b == s[1] {
		return s // already canonical: no allocation
	}
	return string([]byte{a, b})
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
