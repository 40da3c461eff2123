package client

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSolvePoW(t *testing.T) {
	for _, d := range []int{0, 1, 8, 16} {
		ch := make([]byte, 32)
		rand.Read(ch)
		n, err := solvePoW(context.Background(), ch, d)
		if err != nil {
			t.Fatalf("difficulty %d: %v", d, err)
		}
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(append([]byte(nil), ch...), n))
		if got := zeroBits(sum); got < d {
			t.Errorf("difficulty %d: counter %d gives %d zero bits", d, n, got)
		}
		if d == 0 && n != 0 {
			t.Errorf("difficulty 0: counter %d, want 0", n)
		}
		// The smallest counter: every earlier one must fail.
		for i := uint64(0); i < n && i < 1<<12; i++ {
			if zeroBits(sha256.Sum256(binary.BigEndian.AppendUint64(append([]byte(nil), ch...), i))) >= d {
				t.Fatalf("difficulty %d: %d already solves, answered %d", d, i, n)
			}
		}
	}
}

func TestSolvePoWRefusesDifficulty(t *testing.T) {
	for _, d := range []int{-1, 33, 64} {
		if _, err := solvePoW(context.Background(), []byte("x"), d); err == nil {
			t.Errorf("difficulty %d accepted", d)
		}
	}
}

func TestSolvePoWCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := solvePoW(ctx, make([]byte, 32), 32) // would take minutes
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v to notice the deadline", el)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := (ProofOfWork{}).Evidence(cctx, &Challenge{Challenge: base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		PoW: &PoWChallenge{Algorithm: "sha256", Difficulty: 30}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Evidence err = %v, want canceled", err)
	}
}

func TestProofOfWorkEvidence(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	enc := base64.RawURLEncoding.EncodeToString(raw)
	tests := []struct {
		name    string
		ch      Challenge
		wantErr bool
	}{
		{"ok", Challenge{Challenge: enc, PoW: &PoWChallenge{Algorithm: "sha256", Difficulty: 10}}, false},
		{"no pow member", Challenge{Challenge: enc}, true},
		{"other algorithm", Challenge{Challenge: enc, PoW: &PoWChallenge{Algorithm: "sha1", Difficulty: 1}}, true},
		{"too hard", Challenge{Challenge: enc, PoW: &PoWChallenge{Algorithm: "sha256", Difficulty: 33}}, true},
		{"bad challenge", Challenge{Challenge: "!!", PoW: &PoWChallenge{Algorithm: "sha256", Difficulty: 1}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ProofOfWork{}.Evidence(context.Background(), &tt.ch)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			n := ev["counter"].(uint64)
			if zeroBits(sha256.Sum256(binary.BigEndian.AppendUint64(append([]byte(nil), raw...), n))) < tt.ch.PoW.Difficulty {
				t.Errorf("counter %d does not solve", n)
			}
		})
	}
}

func writeTemp(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "release.bin")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestIntegrityMAC(t *testing.T) {
	path, data := writeTemp(t, 10000)
	salt := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name    string
		ranges  []Range
		wantErr bool
	}{
		{"one range", []Range{{100, 4096}}, false},
		{"several in given order", []Range{{9000, 500}, {0, 10}, {4000, 1}}, false},
		{"overlapping", []Range{{10, 100}, {50, 100}}, false},
		{"up to the end", []Range{{9990, 10}}, false},
		{"empty range", []Range{{5, 0}, {6, 3}}, false},
		{"crosses EOF", []Range{{9990, 11}}, true},
		{"starts past EOF", []Range{{0, 4}, {20000, 4}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := integrityMAC(path, salt, tt.ranges)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			m := hmac.New(sha256.New, salt)
			for _, r := range tt.ranges {
				m.Write(data[r.Offset : r.Offset+r.Length])
			}
			if !hmac.Equal(got, m.Sum(nil)) {
				t.Errorf("mac differs from the independent HMAC")
			}
		})
	}
}

func TestIntegrityProvider(t *testing.T) {
	path, data := writeTemp(t, 3000)
	p := &Integrity{Path: path}
	sum := sha256.Sum256(data)
	rel, err := p.Release()
	if err != nil || rel != hex.EncodeToString(sum[:]) {
		t.Fatalf("Release() = %q, %v; want %x", rel, err, sum)
	}
	req, err := p.ChallengeRequest(context.Background())
	if err != nil || req["release"] != rel {
		t.Fatalf("ChallengeRequest = %v, %v", req, err)
	}
	// The release is computed once: changing the file does not change it.
	os.WriteFile(path, []byte("changed"), 0o600)
	if rel2, _ := p.Release(); rel2 != rel {
		t.Errorf("release recomputed: %s", rel2)
	}
	os.WriteFile(path, data, 0o600)

	salt := []byte("salt")
	ch := &Challenge{Integrity: &IntegrityChallenge{Salt: salt, Ranges: []Range{{2990, 10}, {0, 20}}}}
	ev, err := p.Evidence(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, salt)
	m.Write(data[2990:3000])
	m.Write(data[0:20])
	if ev["mac"] != base64.RawURLEncoding.EncodeToString(m.Sum(nil)) {
		t.Errorf("mac = %v", ev["mac"])
	}
	if _, err := p.Evidence(context.Background(), &Challenge{}); err == nil {
		t.Error("a challenge without integrity member accepted")
	}
	if _, err := (&Integrity{Path: filepath.Join(t.TempDir(), "missing")}).Release(); err == nil {
		t.Error("missing file: no error")
	}
	exe, err := (&Integrity{}).Release() // default: the test binary
	if err != nil || len(exe) != 64 {
		t.Errorf("default path release = %q, %v", exe, err)
	}
}
