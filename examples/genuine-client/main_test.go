package main

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/client"
	"github.com/apiguard/apiguard/internal/demo"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// gateway is a minimal stand-in for apiguard in front of the demo shop: it
// runs the integrity attestation of docs/attestation.md (the registered
// release is the test binary) and forwards /api/ requests that carry a valid
// token, bound to the Authorization value when there is one.
type gateway struct {
	t       *testing.T
	priv    ed25519.PrivateKey
	exe     []byte
	release string
	failMAC bool

	mu         sync.Mutex
	challenges map[string][]byte // challenge → salt
	seen       []string          // "METHOD path" forwarded to the shop
}

var ranges = []client.Range{{Offset: 0, Length: 64}, {Offset: 1000, Length: 128}, {Offset: 4096, Length: 1}}

func newGateway(t *testing.T) (*gateway, *httptest.Server) {
	exePath, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(exePath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(exe)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	g := &gateway{t: t, priv: priv, exe: exe, release: hex.EncodeToString(sum[:]), challenges: map[string][]byte{}}
	shop, err := demo.NewShop()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /.apiguard/attest/challenge", g.challenge)
	mux.HandleFunc("POST /.apiguard/attest/integrity", g.verify)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		payload, err := jws.Verify([]byte(r.Header.Get(client.TokenHeader)), jws.WithKey(jwa.EdDSA(), priv.Public()))
		if err != nil {
			problem(w, 401, "attestation-missing", "")
			return
		}
		var claims struct{ Pay string }
		json.Unmarshal(payload, &claims)
		if az := r.Header.Get("Authorization"); az != "" && claims.Pay != client.BindDigest(az) {
			problem(w, 401, "attestation-unbound", "")
			return
		}
		g.mu.Lock()
		g.seen = append(g.seen, r.Method+" "+r.URL.Path)
		g.mu.Unlock()
		shop.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return g, srv
}

func problem(w http.ResponseWriter, status int, slug, reason string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": client.ProblemTypePrefix + slug, "title": http.StatusText(status), "status": status, "reason": reason})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (g *gateway) challenge(w http.ResponseWriter, r *http.Request) {
	var req struct{ App_ID, Provider, Release string }
	json.NewDecoder(r.Body).Decode(&req)
	if req.Provider != "integrity" || req.Release != g.release {
		problem(w, 403, "attestation-release-unknown", "")
		return
	}
	ch, salt := make([]byte, 32), make([]byte, 32)
	rand.Read(ch)
	rand.Read(salt)
	enc := base64.RawURLEncoding.EncodeToString(ch)
	g.mu.Lock()
	g.challenges[enc] = salt
	g.mu.Unlock()
	reply(w, map[string]any{"challenge": enc, "app_id": req.App_ID, "provider": "integrity", "expires_in": 60,
		"integrity": map[string]any{"salt": base64.RawURLEncoding.EncodeToString(salt), "ranges": ranges}})
}

func (g *gateway) verify(w http.ResponseWriter, r *http.Request) {
	var req struct{ Challenge, MAC, Installation_ID, Bind string }
	json.NewDecoder(r.Body).Decode(&req)
	g.mu.Lock()
	salt, ok := g.challenges[req.Challenge]
	delete(g.challenges, req.Challenge)
	g.mu.Unlock()
	if !ok {
		problem(w, 403, "attestation-challenge-invalid", "unknown")
		return
	}
	m := hmac.New(sha256.New, salt)
	for _, rg := range ranges {
		m.Write(g.exe[rg.Offset : rg.Offset+rg.Length])
	}
	if g.failMAC || base64.RawURLEncoding.EncodeToString(m.Sum(nil)) != req.MAC {
		problem(w, 403, "attestation-failed", "mac_mismatch")
		return
	}
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": "test", "sub": "shop-cli", "did": req.Installation_ID, "iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "prv": "integrity", "lvl": "software", "pay": req.Bind})
	h := jws.NewHeaders()
	h.Set(jws.TypeKey, "apiguard-attest+jwt")
	tok, err := jws.Sign(claims, jws.WithKey(jwa.EdDSA(), g.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		g.t.Error(err)
	}
	reply(w, map[string]any{"token": string(tok), "expires_in": 300})
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		failMAC  bool
		wantCode int
		wantOut  []string
		wantSeen []string
	}{
		{"anonymous", nil, false, 0, []string{"attested as shop-cli", "GET /api/products: 200 OK"}, []string{"GET /api/products"}},
		{"signed in", []string{"-user", "alice", "-password", demo.DemoPassword}, false, 0,
			[]string{"POST /api/login: 200 OK", "GET /api/users/alice: 200 OK", "POST /api/transfer: 200 OK"},
			[]string{"GET /api/products", "POST /api/login", "GET /api/users/alice", "POST /api/transfer"}},
		{"wrong password", []string{"-user", "alice", "-password", "nope"}, false, 1,
			[]string{"POST /api/login: 401 Unauthorized", "invalid-credentials"}, []string{"GET /api/products", "POST /api/login"}},
		{"attestation fails", nil, true, 1, []string{"attestation failed: 403 urn:apiguard:problem:attestation-failed", `reason="mac_mismatch"`}, nil},
		{"unknown release", []string{"-release", "main.go"}, false, 1, []string{"urn:apiguard:problem:attestation-release-unknown"}, nil},
		{"bad flag", []string{"-nope"}, false, 2, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, srv := newGateway(t)
			g.failMAC = tt.failMAC
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var out strings.Builder
			code := run(ctx, append([]string{"-gateway", srv.URL}, tt.args...), &out)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\n%s", code, tt.wantCode, out.String())
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			if strings.Join(g.seen, ",") != strings.Join(tt.wantSeen, ",") {
				t.Errorf("shop saw %q, want %q", g.seen, tt.wantSeen)
			}
		})
	}
}
