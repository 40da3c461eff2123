package demo

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/apiguard/apiguard/client"
	"github.com/apiguard/apiguard/internal/attest"
)

// App attestation (docs/attestation.md). The shop's app is registered with
// the gateway's attestation service as ShopAppID; the transfer route serves
// only requests carrying an attestation token the app got by proving, with
// the SDK's integrity provider, that it holds the exact bytes of a
// registered release.
const (
	// ShopAppID is the app id the shop's app attests as.
	ShopAppID = "shop-app"
	// ShopAppVersion is the version of the registered release.
	ShopAppVersion = "1.4.2"
	// AttestKeyFile is the attestation service's signing key in the data
	// directory (apiguard.yaml: attestation.signing_keys).
	AttestKeyFile = "attest-signing.pem"
	// ShopAppBinary is the genuine release binary in the data directory.
	ShopAppBinary = "shop-app-1.4.2.bin"
	// TamperedAppBinary is a repackaged copy with one byte patched.
	TamperedAppBinary = "shop-app-1.4.2-tampered.bin"

	shopAppSize   = 2 << 20
	tamperedIndex = shopAppSize/2 + 4321 // the patched byte
	// eventsDB is where the event store, and with it the app registry,
	// lives (events.store.driver sqlite, the default).
	eventsDB = "events.db"
	// defaultAttestIssuer is the service's iss when the config sets none.
	defaultAttestIssuer = "apiguard"
)

// attestKit is what the scenarios need of the attestation set-up.
type attestKit struct {
	genuine  string // path of the genuine release binary
	tampered string // path of the tampered copy
	release  string // release id: SHA-256 (hex) of the genuine binary
	keys     *attest.Keyring
	issuer   string
}

// shopAppBinary is the demo's stand-in for the app's executable: 2 MiB of
// deterministic bytes, so every run (and every data directory) registers
// the same release.
func shopAppBinary() []byte {
	b := make([]byte, shopAppSize)
	r := rand.NewChaCha8(sha256.Sum256([]byte("apiguard demo " + ShopAppID + " " + ShopAppVersion)))
	_, _ = r.Read(b)
	copy(b, "\x7fELF shop-app "+ShopAppVersion+"\x00")
	return b
}

// prepareAttestation makes, in dataDir, what the attestation service and
// the simulated apps need before the gateway starts: the signing key
// (kept when it exists), the app's release binary and a tampered copy, and
// the app with its release in the registry (<dataDir>/events.db). It can
// run again on the same directory.
func prepareAttestation(ctx context.Context, dataDir string) (*attestKit, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: data dir: %w", err)
	}
	keyFile := filepath.Join(dataDir, AttestKeyFile)
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		pemBytes, _, err := attest.GenerateKey("EdDSA")
		if err != nil {
			return nil, fmt.Errorf("demo: attestation key: %w", err)
		}
		// O_EXCL: never overwrite a key another run wrote meanwhile.
		f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, err = f.Write(pemBytes)
			err = errors.Join(err, f.Close())
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("demo: attestation key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("demo: attestation key: %w", err)
	}
	keys, err := attest.LoadKeyring([]attest.KeySource{{File: keyFile}}, nil)
	if err != nil {
		return nil, fmt.Errorf("demo: attestation key: %w", err)
	}

	bin := shopAppBinary()
	kit := &attestKit{
		genuine:  filepath.Join(dataDir, ShopAppBinary),
		tampered: filepath.Join(dataDir, TamperedAppBinary),
		keys:     keys,
	}
	tampered := slices.Clone(bin)
	tampered[tamperedIndex] ^= 0x01
	for _, f := range []struct {
		path string
		data []byte
	}{{kit.genuine, bin}, {kit.tampered, tampered}} {
		if old, err := os.ReadFile(f.path); err == nil && bytes.Equal(old, f.data) {
			continue
		}
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("demo: app binary: %w", err)
		}
	}

	store, err := attest.OpenStore(ctx, "sqlite", filepath.Join(dataDir, eventsDB))
	if err != nil {
		return nil, fmt.Errorf("demo: app registry: %w", err)
	}
	// Closed before the gateway opens the same file.
	defer store.Close()
	now := time.Now()
	app := &attest.App{ID: ShopAppID, Name: "Shop app", Providers: []string{attest.ProviderIntegrity}, CreatedAt: now, UpdatedAt: now}
	if err := store.PutApp(ctx, app, true); err != nil && !errors.Is(err, attest.ErrAppExists) {
		return nil, fmt.Errorf("demo: register %s: %w", ShopAppID, err)
	}
	sum := sha256.Sum256(bin)
	kit.release = hex.EncodeToString(sum[:])
	rels, err := store.Releases(ctx, ShopAppID)
	if err != nil {
		return nil, fmt.Errorf("demo: releases of %s: %w", ShopAppID, err)
	}
	if !slices.ContainsFunc(rels, func(r *attest.Release) bool { return r.Kind == attest.ReleaseBinary && r.ID == kit.release }) {
		// RegisterBinary fails on a release registered before, so only
		// the first run on a data directory registers it.
		if _, err := store.RegisterBinary(ctx, ShopAppID, ShopAppVersion, bin, now); err != nil {
			return nil, fmt.Errorf("demo: register %s %s: %w", ShopAppID, ShopAppVersion, err)
		}
	}
	return kit, nil
}

// isTransfer selects the requests that go to the single-use transfer route.
func isTransfer(req *http.Request) bool {
	return req.Method == http.MethodPost && req.URL.Path == "/api/transfer"
}

// AttestedAgent is a simulated client running the shop's app with the
// apiguard SDK: its requests go through the SDK's Transport, which attests
// the app (integrity provider over binary) and adds an Apiguard-Token bound
// to the request's Authorization value; transfers get a fresh, single-use
// token each. The SDK's own calls to the attestation service are made from
// the agent's address and counted like its other requests.
func (c *Client) AttestedAgent(ip, ua string, headers http.Header, binary string) *Agent {
	a := c.Agent(ip, ua, headers)
	base := c.http.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	sdk, err := client.New(client.Config{
		BaseURL:  c.base,
		AppID:    ShopAppID,
		Provider: &client.Integrity{Path: binary},
		HTTPClient: &http.Client{
			Transport: &agentTransport{a: a, base: base},
			Timeout:   c.http.Timeout,
		},
	})
	if err != nil { // only for a malformed base URL
		c.log.Error("demo: attestation SDK", "err", err)
		return a
	}
	tr := sdk.Transport(&tapTransport{w: c.world, base: base}, client.TransportOptions{
		BindHeader: "Authorization",
		SingleUse:  isTransfer,
	})
	a.hc = &http.Client{Transport: tr, Timeout: c.http.Timeout, CheckRedirect: c.http.CheckRedirect}
	return a
}

// agentTransport sends the SDK's attestation calls as the agent (address,
// User-Agent) and counts their answers for the agent's scenario.
type agentTransport struct {
	a    *Agent
	base http.RoundTripper
}

func (t *agentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("User-Agent", t.a.ua)
	req.Header.Set("X-Forwarded-For", t.a.ip)
	// Transport errors are not counted here: the SDK retries them, and
	// Agent.do counts the one it finally returns.
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	out := Response{Status: resp.StatusCode, Body: b}
	out.Denied, out.Reason = denial(resp.Header.Get("Content-Type"), b)
	t.a.c.rec.record(out)
	return resp, nil
}

// capturedToken is an attested transfer as an attacker on the path records
// it: the attestation token and the Authorization it was bound to. The
// gateway has already seen (and used up) the token.
type capturedToken struct {
	token, authorization string
}

// tapTransport is the wire under the genuine app: it leaves a copy of each
// attested transfer for the attestation-replay attacker.
type tapTransport struct {
	w    *world
	base http.RoundTripper
}

func (t *tapTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if tok := req.Header.Get(client.TokenHeader); err == nil && tok != "" && isTransfer(req) && t.w.tokens != nil {
		select {
		case t.w.tokens <- capturedToken{token: tok, authorization: req.Header.Get("Authorization")}:
		default:
		}
	}
	return resp, err
}

// issueAttestation signs an attestation token for the genuine release as
// the service would have, bound to authorization, issued at iat and valid
// for ttl: what an attacker finds in a recording.
func (k *attestKit) issueAttestation(authorization string, iat time.Time, ttl time.Duration) (string, error) {
	return k.keys.Issue(&attest.Claims{
		Issuer: k.issuer, Subject: ShopAppID, Device: "inst-" + crand.Text(),
		IssuedAt: iat.Unix(), Expiry: iat.Add(ttl).Unix(),
		Provider: attest.ProviderIntegrity, Level: attest.LevelSoftware, Release: k.release,
		Binding: client.BindDigest(authorization),
	})
}
