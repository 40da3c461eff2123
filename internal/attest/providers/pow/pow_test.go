package pow

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"
)

// leadingZeros counts zero bits the slow, obvious way, to check zeroBits.
func leadingZeros(b []byte) int {
	n := 0
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x>>uint(i)&1 != 0 {
				return n
			}
			n++
		}
	}
	return n
}

func TestSolveAndCheck(t *testing.T) {
	challenge := []byte("0123456789abcdef0123456789abcdef")
	for _, d := range []int{0, 1, 8, 12, 16} {
		c, err := Solve(context.Background(), challenge, d)
		if err != nil {
			t.Fatal(err)
		}
		msg := binary.BigEndian.AppendUint64(append([]byte(nil), challenge...), c)
		sum := sha256.Sum256(msg)
		if got := leadingZeros(sum[:]); got < d {
			t.Fatalf("difficulty %d: counter %d has %d zero bits", d, c, got)
		}
		if !Check(challenge, c, d) {
			t.Fatalf("difficulty %d: Check refuses the solution", d)
		}
		// Smallest solution: every smaller counter fails.
		for x := uint64(0); x < c && x < 5000; x++ {
			if Check(challenge, x, d) {
				t.Fatalf("difficulty %d: %d also solves but Solve returned %d", d, x, c)
			}
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	challenge := []byte("challenge")
	c, _ := Solve(context.Background(), challenge, 12)
	cases := []struct {
		name      string
		challenge []byte
		counter   uint64
		diff      int
	}{
		{"other challenge", []byte("challengf"), c, 12},
		{"too hard", challenge, c, 28},
		{"negative difficulty", challenge, c, -1},
		{"difficulty above max", challenge, c, MaxDifficulty + 1},
	}
	for _, tc := range cases {
		if Check(tc.challenge, tc.counter, tc.diff) {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestZeroBits(t *testing.T) {
	for _, b := range [][32]byte{{}, {0x80}, {0, 0x01}, {0, 0, 0, 0, 0, 0, 0, 0, 0x10}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}} {
		if got, want := zeroBits(b), leadingZeros(b[:]); got != want {
			t.Errorf("%x: %d, want %d", b, got, want)
		}
	}
}

func TestSolveStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := Solve(ctx, []byte("x"), MaxDifficulty); err == nil {
		t.Fatal("Solve at difficulty 32 finished within 20ms or ignored its context")
	}
}

func BenchmarkCheck(b *testing.B) {
	challenge := make([]byte, 32)
	for i := 0; i < b.N; i++ {
		Check(challenge, uint64(i), 18)
	}
}
