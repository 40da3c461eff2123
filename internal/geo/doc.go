// Package geo maps client addresses to a country and an autonomous system
// using MaxMind-format databases (GeoLite2/GeoIP2 Country or City, GeoLite2
// ASN, or compatible files such as DB-IP's), and fences routes by country.
//
// Lookups run on the hot path of every request, so DB.Lookup keeps decoded
// records in a small direct-mapped cache keyed by the record's offset in
// the file: a country database has a few thousand distinct records shared
// by millions of networks, so after warm-up a lookup is a tree walk and a
// cache hit that allocates nothing.
//
// Databases are read into memory rather than memory-mapped. That costs the
// file's size in RSS but makes Close safe while lookups are in flight (a
// config reload swaps databases under load), and a file rewritten in place
// on disk cannot change, or crash, a database in use.
//
// Fence is the per-route policy built on top: an allow-list or a deny-list
// of ISO 3166-1 alpha-2 codes plus what to do with addresses whose country
// is unknown (private ranges, new allocations, satellite providers).
package geo
