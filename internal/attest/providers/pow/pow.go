// Package pow is the web proof-of-work: SHA-256 hashcash over a server
// challenge. The client finds a 64-bit counter such that
// SHA-256(challenge ‖ counter as 8 bytes big-endian) starts with difficulty
// zero bits; finding one takes 2^difficulty hashes on average, checking it
// takes one.
package pow

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/bits"
)

// MaxDifficulty bounds the difficulty a server may ask for: 2^32 hashes is
// minutes of a phone's time already.
const MaxDifficulty = 32

// Check reports whether counter solves challenge at difficulty.
func Check(challenge []byte, counter uint64, difficulty int) bool {
	if difficulty < 0 || difficulty > MaxDifficulty {
		return false
	}
	return zeroBits(hash(challenge, counter)) >= difficulty
}

// ErrDifficulty is returned by Solve for a difficulty out of range.
var ErrDifficulty = errors.New("pow: difficulty out of range")

// Solve finds the smallest solving counter; it stops when ctx ends.
func Solve(ctx context.Context, challenge []byte, difficulty int) (uint64, error) {
	if difficulty < 0 || difficulty > MaxDifficulty {
		return 0, ErrDifficulty
	}
	for c := uint64(0); ; c++ {
		if c&0xffff == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if zeroBits(hash(challenge, c)) >= difficulty {
			return c, nil
		}
	}
}

func hash(challenge []byte, counter uint64) [32]byte {
	var buf [64 + 8]byte
	msg := buf[:0]
	if len(challenge) <= 64 {
		msg = append(msg, challenge...)
	} else {
		msg = append([]byte(nil), challenge...)
	}
	msg = binary.BigEndian.AppendUint64(msg, counter)
	return sha256.Sum256(msg)
}

// zeroBits counts the leading zero bits of a digest.
func zeroBits(sum [32]byte) int {
	n := 0
	for i := 0; i < len(sum); i += 8 {
		w := binary.BigEndian.Uint64(sum[i:])
		n += bits.LeadingZeros64(w)
		if w != 0 {
			break
		}
	}
	return n
}
