package attest

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/apiguard/apiguard/internal/attest/providers/integrity"
	"github.com/apiguard/apiguard/internal/attest/providers/pow"
)

// integrityProvider: the client answers HMAC(salt, ranges of its binary).
type integrityProvider struct{}

func (integrityProvider) prepare(_ context.Context, _ *Service, _ *App, rels []*Release, req *challengeRequest, ch *challengeRecord) *Failure {
	rel := release(rels, ReleaseBinary, req.Release)
	switch {
	case rel == nil:
		return fail(http.StatusForbidden, "attestation-release-unknown", "", "this binary is not a registered release of the app")
	case rel.Revoked():
		return fail(http.StatusForbidden, "attestation-release-revoked", "", "this release was revoked; update the app")
	}
	salt, ranges, err := integrity.NewChallenge(rel.Size)
	if err != nil {
		return fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
	}
	ch.Release, ch.Salt = rel.ID, salt
	for _, r := range ranges {
		ch.Ranges = append(ch.Ranges, rangeJSON(r))
	}
	return nil
}

func (integrityProvider) verify(ctx context.Context, s *Service, _ *App, rels []*Release, ch *challengeRecord, _ []byte, req *verifyRequest) (attested, *Failure) {
	mac, err := base64.RawURLEncoding.DecodeString(req.MAC)
	if err != nil || len(mac) != 32 {
		return attested{}, fail(http.StatusBadRequest, "bad-request", "", "mac must be base64url of 32 bytes")
	}
	// The release may have been revoked since the challenge.
	if rel := release(rels, ReleaseBinary, ch.Release); rel == nil || rel.Revoked() {
		return attested{}, fail(http.StatusForbidden, "attestation-release-revoked", "", "this release was revoked; update the app")
	}
	ranges := make([]integrity.Range, len(ch.Ranges))
	for i, r := range ch.Ranges {
		ranges[i] = integrity.Range(r)
	}
	parts, err := s.reg.store.readRanges(ctx, ch.App, ch.Release, ranges)
	if err != nil {
		s.log.Error("attestation: reading a release", "error", err.Error())
		return attested{}, fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
	}
	if !integrity.Equal(integrity.AnswerFromParts(ch.Salt, parts), mac) {
		return attested{}, fail(http.StatusForbidden, "attestation-failed", "mac_mismatch", "the answer does not match the registered release")
	}
	return attested{device: deviceOr(req), level: LevelSoftware, release: ch.Release}, nil
}

// powProvider: hashcash over the challenge.
type powProvider struct{}

func (powProvider) prepare(_ context.Context, s *Service, app *App, _ []*Release, _ *challengeRequest, ch *challengeRecord) *Failure {
	// The difficulty is fixed per app today; it is chosen here, per
	// challenge, so it can follow the client's risk score later.
	ch.Difficulty = cmpOr(app.Policy.PoWDifficulty, s.difficulty)
	return nil
}

func (powProvider) verify(_ context.Context, _ *Service, _ *App, _ []*Release, ch *challengeRecord, nonce []byte, req *verifyRequest) (attested, *Failure) {
	if req.Counter == nil {
		return attested{}, fail(http.StatusBadRequest, "bad-request", "", "counter is required")
	}
	if !pow.Check(nonce, *req.Counter, ch.Difficulty) {
		return attested{}, fail(http.StatusForbidden, "attestation-failed", "insufficient_work", "the counter does not solve the challenge")
	}
	return attested{device: deviceOr(req), level: LevelWork}, nil
}

// newPinSigner collects the pins: configured backups, certificate files and
// the listener's own chain.
func newPinSigner(p *Pinning, listener [][]byte) (*pinSigner, error) {
	ps := &pinSigner{hosts: p.Hosts, pins: slices.Clone(p.Pins), ttl: durationOr(p.TTL, defaultPinsTTL)}
	for _, f := range p.CertFiles {
		pins, err := spkiPinsFromFile(f)
		if err != nil {
			return nil, err
		}
		ps.pins = append(ps.pins, pins...)
	}
	if p.ListenerChain == nil || *p.ListenerChain {
		for _, der := range listener {
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, err
			}
			ps.pins = append(ps.pins, SPKIPin(cert))
		}
	}
	slices.Sort(ps.pins)
	ps.pins = slices.Compact(ps.pins)
	if len(ps.pins) == 0 {
		return nil, errors.New("no pins: configure pins or cert_files, or TLS on the listener")
	}
	return ps, nil
}

// hexDigests decodes hex digests, skipping malformed ones.
func hexDigests(ids []string) [][]byte {
	var out [][]byte
	for _, id := range ids {
		if b, err := hex.DecodeString(id); err == nil {
			out = append(out, b)
		}
	}
	return out
}

var _ = time.Second
