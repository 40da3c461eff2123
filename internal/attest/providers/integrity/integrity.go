// Package integrity is the software-integrity challenge: the server names a
// random salt and random byte ranges of a registered release binary, and the
// client answers HMAC-SHA256(salt, those bytes of its own executable). A
// client whose binary differs in any challenged byte gives a wrong answer.
//
// What it proves is possession of the release's bytes at answer time, not
// that the running code is that binary: an attacker who keeps a pristine
// copy next to a modified client can answer from the copy. It stops casual
// repackaging and patched binaries that read themselves, and it raises the
// cost of the rest; docs/attestation.md says so to operators.
package integrity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
)

const (
	// RangeCount is how many ranges a challenge names.
	RangeCount = 16
	// MaxRangeLength bounds one range, so an answer reads at most 1 MiB:
	// each challenge samples 1 MiB of the binary (all of a small one).
	MaxRangeLength = 64 << 10
	// MinSize is the smallest binary that can be registered: smaller
	// files leave too few distinct ranges to sample.
	MinSize = 1024
	// SaltSize is the HMAC key length.
	SaltSize = 32
)

// Range is one byte range of the binary.
type Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// NewChallenge picks a random salt and RangeCount random ranges inside a
// binary of size bytes.
func NewChallenge(size int64) (salt []byte, ranges []Range, err error) {
	if size < MinSize {
		return nil, nil, fmt.Errorf("integrity: binary of %d bytes is below the minimum of %d", size, MinSize)
	}
	salt = make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, nil, err
	}
	length := min(int64(MaxRangeLength), size/RangeCount)
	ranges = make([]Range, RangeCount)
	span := big.NewInt(size - length + 1)
	for i := range ranges {
		off, err := rand.Int(rand.Reader, span)
		if err != nil {
			return nil, nil, err
		}
		ranges[i] = Range{Offset: off.Int64(), Length: length}
	}
	return salt, ranges, nil
}

// ErrRange is returned for a range outside the binary.
var ErrRange = errors.New("integrity: range outside the binary")

// Answer computes the client's answer from the binary r of size bytes.
func Answer(salt []byte, ranges []Range, r io.ReaderAt, size int64) ([]byte, error) {
	mac := hmac.New(sha256.New, salt)
	buf := make([]byte, MaxRangeLength)
	for _, rg := range ranges {
		if !rg.valid(size) {
			return nil, ErrRange
		}
		b := buf[:rg.Length]
		if _, err := r.ReadAt(b, rg.Offset); err != nil {
			return nil, fmt.Errorf("integrity: read: %w", err)
		}
		mac.Write(b)
	}
	return mac.Sum(nil), nil
}

// AnswerFromParts computes the answer from the ranges' bytes, read
// elsewhere (the server reads them from the registry's database).
func AnswerFromParts(salt []byte, parts [][]byte) []byte {
	mac := hmac.New(sha256.New, salt)
	for _, p := range parts {
		mac.Write(p)
	}
	return mac.Sum(nil)
}

// Valid reports whether ranges fit a binary of size bytes and are as many
// and as long as a challenge of ours names.
func Valid(ranges []Range, size int64) bool {
	if len(ranges) != RangeCount {
		return false
	}
	for _, rg := range ranges {
		if !rg.valid(size) {
			return false
		}
	}
	return true
}

func (rg Range) valid(size int64) bool {
	return rg.Offset >= 0 && rg.Length > 0 && rg.Length <= MaxRangeLength && rg.Offset <= size-rg.Length
}

// Equal compares two answers in constant time.
func Equal(a, b []byte) bool { return hmac.Equal(a, b) }
