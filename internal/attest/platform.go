package attest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"github.com/apiguard/apiguard/internal/attest/providers/appattest"
	"github.com/apiguard/apiguard/internal/attest/providers/keyattest"
)

// addPlatformProviders adds Apple App Attest and Android Key Attestation.
func (s *Service) addPlatformProviders(cfg Config) error {
	s.providers[ProviderAppAttest] = appAttestProvider{}
	ka := keyAttestProvider{}
	if cfg.AndroidRevocationFile != "" {
		f, err := os.Open(cfg.AndroidRevocationFile)
		if err != nil {
			return fmt.Errorf("attestation.android_revocation_file: %w", err)
		}
		defer f.Close()
		if ka.revoked, err = keyattest.LoadRevocationList(f); err != nil {
			return fmt.Errorf("attestation.android_revocation_file: %w", err)
		}
	}
	s.providers[ProviderKeyAttest] = ka
	return nil
}

// clientDataHash is what the app signs over for both platform providers:
// SHA-256 of the challenge string as the service sent it.
func clientDataHash(challenge string) []byte {
	sum := sha256.Sum256([]byte(challenge))
	return sum[:]
}

// appAttestProvider verifies App Attest attestations, then assertions by the
// attested key on later calls.
type appAttestProvider struct{}

const appAttestKeyPrefix = "attest:aa:key:"

// appAttestKey is what the state backend keeps per attested key.
type appAttestKey struct {
	App     string `json:"app"`
	AppID   string `json:"app_id"` // TeamID.bundleID
	Pub     []byte `json:"pub"`
	Counter uint32 `json:"ctr"`
}

func (appAttestProvider) prepare(context.Context, *Service, *App, []*Release, *challengeRequest, *challengeRecord) *Failure {
	return nil
}

func providerFailure(err error) *Failure {
	var ae *appattest.Error
	if errors.As(err, &ae) {
		return fail(http.StatusForbidden, "attestation-failed", ae.Reason, ae.Detail)
	}
	var ke *keyattest.Error
	if errors.As(err, &ke) {
		return fail(http.StatusForbidden, "attestation-failed", ke.Reason, ke.Detail)
	}
	return fail(http.StatusForbidden, "attestation-failed", "malformed", "the evidence could not be verified")
}

func (p appAttestProvider) verify(ctx context.Context, s *Service, app *App, rels []*Release, ch *challengeRecord, _ []byte, req *verifyRequest) (attested, *Failure) {
	keyID, err := base64.StdEncoding.DecodeString(req.KeyID)
	if err != nil || len(keyID) != sha256.Size {
		return attested{}, fail(http.StatusBadRequest, "bad-request", "", "key_id must be the standard base64 key id App Attest returned")
	}
	device := base64.RawURLEncoding.EncodeToString(keyID)
	cdh := clientDataHash(reqChallenge(req))
	switch {
	case req.Attestation != "" && req.Assertion == "":
		obj, err := base64.StdEncoding.DecodeString(req.Attestation)
		if err != nil {
			return attested{}, fail(http.StatusBadRequest, "bad-request", "", "attestation must be standard base64")
		}
		var appIDs []string
		for _, r := range rels {
			if r.Kind == ReleaseAppleAppID {
				appIDs = append(appIDs, r.ID)
			}
		}
		if len(appIDs) == 0 {
			return attested{}, fail(http.StatusForbidden, "attestation-release-unknown", "", "the app has no registered Apple app id")
		}
		att, err := appattest.VerifyAttestation(obj, cdh, keyID, appattest.AttestationOptions{
			AppIDs: appIDs, AllowDevelopment: app.Policy.AllowDebug, AllowProduction: true, Now: s.now(),
		})
		if err != nil {
			return attested{}, providerFailure(err)
		}
		if release(rels, ReleaseAppleAppID, att.AppID).Revoked() {
			return attested{}, fail(http.StatusForbidden, "attestation-release-revoked", "", "this app id was revoked")
		}
		pub, _ := appattest.MarshalPublicKey(att.PublicKey)
		rec, _ := json.Marshal(appAttestKey{App: app.ID, AppID: att.AppID, Pub: pub})
		if err := s.st.Put(ctx, appAttestKeyPrefix+device, rec, s.appAttestTTL); err != nil {
			return attested{}, fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
		}
		return attested{device: device, level: LevelHardware, release: att.AppID}, nil
	case req.Assertion != "" && req.Attestation == "":
		asr, err := base64.StdEncoding.DecodeString(req.Assertion)
		if err != nil {
			return attested{}, fail(http.StatusBadRequest, "bad-request", "", "assertion must be standard base64")
		}
		raw, ok, err := s.st.Get(ctx, appAttestKeyPrefix+device)
		if err != nil {
			return attested{}, fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
		}
		var k appAttestKey
		if !ok || json.Unmarshal(raw, &k) != nil || k.App != app.ID {
			return attested{}, fail(http.StatusForbidden, "attestation-failed", "unknown_key", "this key was not attested for the app; attest it first")
		}
		if r := release(rels, ReleaseAppleAppID, k.AppID); r == nil || r.Revoked() {
			return attested{}, fail(http.StatusForbidden, "attestation-release-revoked", "", "this app id was revoked")
		}
		pub, err := appattest.ParsePublicKey(k.Pub)
		if err != nil {
			return attested{}, fail(http.StatusForbidden, "attestation-failed", "unknown_key", "this key was not attested for the app; attest it first")
		}
		ctr, err := appattest.VerifyAssertion(asr, cdh, pub, k.AppID, k.Counter)
		if err != nil {
			return attested{}, providerFailure(err)
		}
		// Two concurrent assertions could both pass the counter check
		// above; only the first to claim its counter value wins.
		if first, err := s.st.PutNX(ctx, appAttestKeyPrefix+device+":"+strconv.FormatUint(uint64(ctr), 10), []byte{1}, s.challengeTTL); err != nil || !first {
			return attested{}, fail(http.StatusForbidden, "attestation-failed", appattest.ReasonCounter, "the assertion counter did not increase")
		}
		k.Counter = ctr
		rec, _ := json.Marshal(k)
		if err := s.st.Put(ctx, appAttestKeyPrefix+device, rec, s.appAttestTTL); err != nil {
			return attested{}, fail(http.StatusServiceUnavailable, "service-unavailable", "", "attestation is unavailable, retry later")
		}
		return attested{device: device, level: LevelHardware, release: k.AppID}, nil
	}
	return attested{}, fail(http.StatusBadRequest, "bad-request", "", "send either attestation or assertion")
}

// reqChallenge is the challenge string the client answered.
func reqChallenge(req *verifyRequest) string { return req.Challenge }

// keyAttestProvider verifies Android Key Attestation certificate chains.
type keyAttestProvider struct {
	revoked *keyattest.RevocationList
}

func (keyAttestProvider) prepare(context.Context, *Service, *App, []*Release, *challengeRequest, *challengeRecord) *Failure {
	return nil
}

func (p keyAttestProvider) verify(_ context.Context, s *Service, app *App, rels []*Release, _ *challengeRecord, nonce []byte, req *verifyRequest) (attested, *Failure) {
	if len(req.Chain) > keyattest.MaxChainLen {
		return attested{}, fail(http.StatusForbidden, "attestation-failed", keyattest.ReasonTooLarge, "chain longer than 10 certificates")
	}
	chain := make([][]byte, len(req.Chain))
	for i, c := range req.Chain {
		der, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			return attested{}, fail(http.StatusBadRequest, "bad-request", "", "chain entries must be standard base64 DER")
		}
		chain[i] = der
	}
	var digests []string
	for _, r := range rels {
		if r.Kind == ReleaseAndroidSigner {
			digests = append(digests, r.ID)
		}
	}
	if len(digests) == 0 || len(app.AndroidPackages) == 0 {
		return attested{}, fail(http.StatusForbidden, "attestation-release-unknown", "", "the app has no registered Android package and signer")
	}
	pol := keyattest.Policy{
		Challenge:           nonce,
		PackageNames:        app.AndroidPackages,
		SigningCertDigests:  hexDigests(digests),
		MinSecurityLevel:    keyattest.TrustedEnvironment,
		RequireVerifiedBoot: !app.Policy.AllowUnlocked,
		RequireDeviceLocked: !app.Policy.AllowUnlocked,
		MinOSPatchLevel:     app.Policy.MinPatchLevel,
	}
	if app.Policy.AllowEmulator {
		pol.MinSecurityLevel = keyattest.Software
	}
	if app.Policy.RequireStrongBox {
		pol.MinSecurityLevel = keyattest.StrongBox
	}
	res, err := keyattest.Verify(chain, pol, keyattest.Options{Revoked: p.revoked, Now: s.now()})
	if err != nil {
		return attested{}, providerFailure(err)
	}
	// Which registered signer matched? Refuse when it is revoked.
	signer := ""
	if aid := res.Description.Software.ApplicationID; aid != nil {
		for _, d := range aid.SignatureDigests {
			if r := release(rels, ReleaseAndroidSigner, hex.EncodeToString(d)); r != nil {
				if r.Revoked() {
					return attested{}, fail(http.StatusForbidden, "attestation-release-revoked", "", "this signing certificate was revoked")
				}
				signer = r.ID
			}
		}
	}
	spki, err := x509.MarshalPKIXPublicKey(res.Key)
	if err != nil {
		return attested{}, fail(http.StatusForbidden, "attestation-failed", keyattest.ReasonMalformed, "the attested key is not usable")
	}
	sum := sha256.Sum256(spki)
	return attested{device: base64.RawURLEncoding.EncodeToString(sum[:16]), level: LevelHardware, release: signer}, nil
}
