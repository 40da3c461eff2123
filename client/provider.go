package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"
	"time"
)

// Provider produces the evidence of one attestation provider. The built-in
// providers are *Integrity and ProofOfWork; platform providers (App Attest
// through cgo or gomobile, Android Key Attestation) implement it outside
// this package.
type Provider interface {
	// Name is the provider's name in the protocol ("integrity", "pow",
	// "appattest", "keyattest"); it is sent as "provider" and names the
	// verify path /.apiguard/attest/{Name}.
	Name() string
	// ChallengeRequest returns the provider's extra members of the
	// challenge request (integrity: "release"), or nil. The client sets
	// "app_id" and "provider" itself.
	ChallengeRequest(ctx context.Context) (map[string]any, error)
	// Evidence returns the provider's members of the verify body for ch,
	// e.g. {"mac": …} or {"key_id": …, "assertion": …}. The client adds
	// "challenge", "installation_id" and "bind" itself.
	Evidence(ctx context.Context, ch *Challenge) (map[string]any, error)
}

// Challenge is the answer to POST /.apiguard/attest/challenge.
type Challenge struct {
	// Challenge is the single-use challenge as sent (base64url, no padding).
	Challenge string
	AppID     string
	Provider  string
	// ExpiresAt is when the challenge expires. When the service sends no
	// valid expires_at it is computed from expires_in and the local clock.
	ExpiresAt time.Time
	// Integrity is set for the integrity provider.
	Integrity *IntegrityChallenge
	// PoW is set for the pow provider.
	PoW *PoWChallenge
}

// Bytes returns the decoded challenge bytes.
func (c *Challenge) Bytes() ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(c.Challenge)
}

// IntegrityChallenge is the integrity member of a challenge.
type IntegrityChallenge struct {
	// Salt is the decoded HMAC key.
	Salt []byte
	// Ranges are the byte ranges of the release to MAC, in order.
	Ranges []Range
}

// Range is a byte range of the release binary.
type Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// PoWChallenge is the pow member of a challenge.
type PoWChallenge struct {
	Algorithm  string `json:"algorithm"`
	Difficulty int    `json:"difficulty"`
}

// maxRanges bounds the ranges of an integrity challenge (the service sends 8).
const maxRanges = 1024

// decodeChallenge parses and checks a challenge response. now is the local
// time the challenge was requested.
func decodeChallenge(body []byte, now time.Time) (*Challenge, error) {
	var w struct {
		Challenge string `json:"challenge"`
		AppID     string `json:"app_id"`
		Provider  string `json:"provider"`
		ExpiresAt string `json:"expires_at"`
		ExpiresIn int64  `json:"expires_in"`
		Integrity *struct {
			Salt   string  `json:"salt"`
			Ranges []Range `json:"ranges"`
		} `json:"integrity"`
		PoW *PoWChallenge `json:"pow"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("apiguard: malformed challenge response: %w", err)
	}
	ch := &Challenge{Challenge: w.Challenge, AppID: w.AppID, Provider: w.Provider, PoW: w.PoW}
	if b, err := ch.Bytes(); err != nil || len(b) == 0 {
		return nil, errors.New("apiguard: challenge response: challenge missing or not base64url")
	}
	if t, err := time.Parse(time.RFC3339, w.ExpiresAt); err == nil {
		ch.ExpiresAt = t
	} else if w.ExpiresIn > 0 && w.ExpiresIn < 1<<31 {
		ch.ExpiresAt = now.Add(time.Duration(w.ExpiresIn) * time.Second)
	}
	if w.Integrity != nil {
		salt, err := base64.RawURLEncoding.DecodeString(w.Integrity.Salt)
		if err != nil || len(salt) == 0 {
			return nil, errors.New("apiguard: challenge response: integrity salt missing or not base64url")
		}
		if len(w.Integrity.Ranges) == 0 || len(w.Integrity.Ranges) > maxRanges {
			return nil, fmt.Errorf("apiguard: challenge response: %d integrity ranges", len(w.Integrity.Ranges))
		}
		for _, r := range w.Integrity.Ranges {
			if r.Offset < 0 || r.Length < 0 || r.Offset > 1<<62-r.Length {
				return nil, fmt.Errorf("apiguard: challenge response: bad integrity range %+v", r)
			}
		}
		ch.Integrity = &IntegrityChallenge{Salt: salt, Ranges: w.Integrity.Ranges}
	}
	return ch, nil
}

// Integrity is the software integrity provider for desktop, CLI and IoT
// clients: it proves the client can read the exact bytes of a registered
// release binary. Use it as a pointer (&client.Integrity{}); it is safe for
// concurrent use and must not be copied after first use.
type Integrity struct {
	// Path is the release binary; empty means the running executable
	// (os.Executable).
	Path string

	once    sync.Once
	path    string
	release string
	err     error
}

// Name implements Provider.
func (*Integrity) Name() string { return "integrity" }

func (p *Integrity) init() {
	p.once.Do(func() {
		p.path = p.Path
		if p.path == "" {
			if p.path, p.err = os.Executable(); p.err != nil {
				p.err = fmt.Errorf("apiguard: integrity: %w", p.err)
				return
			}
		}
		f, err := os.Open(p.path)
		if err != nil {
			p.err = fmt.Errorf("apiguard: integrity: %w", err)
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			p.err = fmt.Errorf("apiguard: integrity: reading %s: %w", p.path, err)
			return
		}
		p.release = hex.EncodeToString(h.Sum(nil))
	})
}

// Release returns the release id: the SHA-256 (lower-case hex) of the
// binary, computed once.
func (p *Integrity) Release() (string, error) {
	p.init()
	return p.release, p.err
}

// ChallengeRequest implements Provider: it sends the release.
func (p *Integrity) ChallengeRequest(context.Context) (map[string]any, error) {
	rel, err := p.Release()
	if err != nil {
		return nil, err
	}
	return map[string]any{"release": rel}, nil
}

// Evidence implements Provider: "mac" is HMAC-SHA256 keyed with the salt
// over the bytes of the binary in each range, concatenated in order.
func (p *Integrity) Evidence(_ context.Context, ch *Challenge) (map[string]any, error) {
	if ch.Integrity == nil {
		return nil, errors.New("apiguard: integrity: the challenge has no integrity member")
	}
	p.init()
	if p.err != nil {
		return nil, p.err
	}
	mac, err := integrityMAC(p.path, ch.Integrity.Salt, ch.Integrity.Ranges)
	if err != nil {
		return nil, err
	}
	return map[string]any{"mac": base64.RawURLEncoding.EncodeToString(mac)}, nil
}

// integrityMAC computes the integrity answer over the file at path. A range
// that reaches past the end of the file is an error.
func integrityMAC(path string, salt []byte, ranges []Range) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("apiguard: integrity: %w", err)
	}
	defer f.Close()
	m := hmac.New(sha256.New, salt)
	for _, r := range ranges {
		n, err := io.Copy(m, io.NewSectionReader(f, r.Offset, r.Length)) // reads with ReadAt
		if err != nil {
			return nil, fmt.Errorf("apiguard: integrity: reading range %d+%d: %w", r.Offset, r.Length, err)
		}
		if n != r.Length {
			return nil, fmt.Errorf("apiguard: integrity: range %d+%d is past the end of %s", r.Offset, r.Length, path)
		}
	}
	return m.Sum(nil), nil
}

// ProofOfWork is the hashcash provider for clients without a platform
// attestation (browsers, scripts): it finds a counter such that
// SHA-256(challenge ‖ counter as 8 bytes big-endian) starts with
// difficulty zero bits. It refuses difficulties above MaxPoWDifficulty.
type ProofOfWork struct{}

// MaxPoWDifficulty is the highest difficulty ProofOfWork accepts
// (2^32 hashes on average is minutes of CPU time).
const MaxPoWDifficulty = 32

// Name implements Provider.
func (ProofOfWork) Name() string { return "pow" }

// ChallengeRequest implements Provider; pow has no extra members.
func (ProofOfWork) ChallengeRequest(context.Context) (map[string]any, error) { return nil, nil }

// Evidence implements Provider: it solves the puzzle, checking ctx now and
// then.
func (ProofOfWork) Evidence(ctx context.Context, ch *Challenge) (map[string]any, error) {
	if ch.PoW == nil {
		return nil, errors.New("apiguard: pow: the challenge has no pow member")
	}
	if ch.PoW.Algorithm != "sha256" {
		return nil, fmt.Errorf("apiguard: pow: unsupported algorithm %q", ch.PoW.Algorithm)
	}
	b, err := ch.Bytes()
	if err != nil {
		return nil, fmt.Errorf("apiguard: pow: %w", err)
	}
	n, err := solvePoW(ctx, b, ch.PoW.Difficulty)
	if err != nil {
		return nil, err
	}
	return map[string]any{"counter": n}, nil
}

// solvePoW returns the smallest counter whose hash has difficulty leading
// zero bits.
func solvePoW(ctx context.Context, challenge []byte, difficulty int) (uint64, error) {
	if difficulty < 0 || difficulty > MaxPoWDifficulty {
		return 0, fmt.Errorf("apiguard: pow: difficulty %d outside 0..%d", difficulty, MaxPoWDifficulty)
	}
	buf := make([]byte, len(challenge)+8)
	copy(buf, challenge)
	for counter := uint64(0); ; counter++ {
		if counter&0x3fff == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("apiguard: pow: %w", err)
			}
		}
		binary.BigEndian.PutUint64(buf[len(challenge):], counter)
		sum := sha256.Sum256(buf)
		if bits.LeadingZeros32(binary.BigEndian.Uint32(sum[:4])) >= difficulty {
			return counter, nil
		}
		if counter == ^uint64(0) {
			return 0, errors.New("apiguard: pow: no solution")
		}
	}
}
