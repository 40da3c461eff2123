package keyattest

import (
	"encoding/json"
	"io"
	"math/big"
	"strings"
)

// maxRevocationListSize bounds LoadRevocationList; Google's list is a few
// hundred KiB today.
const maxRevocationListSize = 32 << 20

// RevocationEntry is one entry of Google's attestation status list.
type RevocationEntry struct {
	Status string // "REVOKED" or "SUSPENDED"; Verify refuses any listed serial
	Reason string // e.g. "KEY_COMPROMISE"
}

// RevocationList maps certificate serials (normalised lowercase hex without
// leading zeros, as Google writes them) to their entry.
type RevocationList struct {
	entries map[string]RevocationEntry
}

// LoadRevocationList reads the JSON served at
// https://android.googleapis.com/attestation/status ({"entries": {...}}).
// A document without "entries", or with a key that is not hex, is an error:
// silently loading an empty list on a format change would disable revocation.
func LoadRevocationList(r io.Reader) (*RevocationList, error) {
	var doc struct {
		Entries *map[string]RevocationEntry `json:"entries"`
	}
	lr := &io.LimitedReader{R: r, N: maxRevocationListSize + 1}
	if err := json.NewDecoder(lr).Decode(&doc); err != nil {
		if lr.N <= 0 {
			return nil, &Error{Reason: ReasonTooLarge, Detail: "revocation list exceeds 32 MiB"}
		}
		return nil, malformed("revocation list is not valid JSON")
	}
	if doc.Entries == nil {
		return nil, malformed(`revocation list has no "entries"`)
	}
	l := &RevocationList{entries: make(map[string]RevocationEntry, len(*doc.Entries))}
	for k, e := range *doc.Entries {
		n, ok := normaliseSerial(k)
		if !ok {
			return nil, malformed("revocation list has a non-hex serial")
		}
		l.entries[n] = e
	}
	return l, nil
}

// Len reports the number of entries.
func (l *RevocationList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// Lookup reports whether a certificate serial is listed.
func (l *RevocationList) Lookup(serial *big.Int) (RevocationEntry, bool) {
	if l == nil || serial == nil {
		return RevocationEntry{}, false
	}
	e, ok := l.entries[serialHex(serial)]
	return e, ok
}

// serialHex formats a serial the way Google keys its list.
func serialHex(s *big.Int) string { return s.Text(16) }

func normaliseSerial(k string) (string, bool) {
	k = strings.ToLower(strings.TrimSpace(k))
	if k == "" || len(k) > 128 {
		return "", false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	k = strings.TrimLeft(k, "0")
	if k == "" {
		k = "0"
	}
	return k, true
}
