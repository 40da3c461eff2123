package client

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

const testIssuer = "https://apiguard.test"

// fakeService implements the attestation endpoints of docs/attestation.md
// minimally, plus GET/POST /api/thing, a route that demands a token.
type fakeService struct {
	t        testing.TB
	srv      *httptest.Server
	priv     ed25519.PrivateKey
	jwks     []byte
	lifetime time.Duration
	now      func() time.Time // token timestamps

	difficulty  int
	releaseFile string // integrity: the registered release

	nChallenge, nVerify, nPins, nJWKS, nAPI atomic.Int32

	mu         sync.Mutex
	challenges map[string]fakeChallenge
	pins       string        // served by GET pins and verify
	gate       chan struct{} // when set, verify waits for it to close
	// hook may answer a request itself (return true), e.g. with an error.
	hook func(w http.ResponseWriter, r *http.Request) bool
	// api answers /api/thing once the token checked out; nil: 200 "ok".
	api       func(w http.ResponseWriter, r *http.Request, tok string, claims map[string]any)
	apiTokens []string
	apiBodies []string
}

type fakeChallenge struct {
	app, provider string
	raw           []byte
	salt          []byte
	ranges        []Range
}

func newFakeService(t testing.TB) *fakeService {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeService{t: t, priv: priv, lifetime: 5 * time.Minute, now: time.Now, difficulty: 8, challenges: map[string]fakeChallenge{}}
	s.jwks = jwksOf(t, pub, "k1")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /.apiguard/attest/challenge", s.challenge)
	mux.HandleFunc("POST /.apiguard/attest/secrets", s.secrets)
	mux.HandleFunc("GET /.apiguard/attest/pins", func(w http.ResponseWriter, r *http.Request) {
		s.nPins.Add(1)
		s.mu.Lock()
		p := s.pins
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{"pins": p})
	})
	mux.HandleFunc("POST /.apiguard/attest/{provider}", s.verify)
	mux.HandleFunc("GET /.well-known/apiguard/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		s.nJWKS.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.jwks)
	})
	mux.HandleFunc("/api/thing", s.apiThing)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.hook
		s.mu.Unlock()
		if h != nil && h(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeService) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

func jwksOf(t testing.TB, pub ed25519.PublicKey, kid string) []byte {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	k.Set(jwk.KeyIDKey, kid)
	k.Set(jwk.AlgorithmKey, jwa.EdDSA())
	set := jwk.NewSet()
	set.AddKey(k)
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signJWS signs claims as the service does.
func signJWS(t testing.TB, priv ed25519.PrivateKey, kid, typ string, claims any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	h.Set(jws.KeyIDKey, kid)
	h.Set(jws.TypeKey, typ)
	b, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA(), priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, slug, reason string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	m := map[string]any{"type": ProblemTypePrefix + slug, "title": http.StatusText(status), "status": status}
	if reason != "" {
		m["reason"] = reason
	}
	json.NewEncoder(w).Encode(m)
}

func (s *fakeService) challenge(w http.ResponseWriter, r *http.Request) {
	s.nChallenge.Add(1)
	var req struct {
		AppID    string `json:"app_id"`
		Provider string `json:"provider"`
		Release  string `json:"release"`
	}
	if json.NewDecoder(r.Body).Decode(&req) != nil || req.AppID == "" || req.Provider == "" {
		writeProblem(w, 400, "bad-request", "")
		return
	}
	if req.AppID != "shop-cli" {
		writeProblem(w, 403, "attestation-app-unknown", "")
		return
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	enc := base64.RawURLEncoding.EncodeToString(raw)
	fc := fakeChallenge{app: req.AppID, provider: req.Provider, raw: raw}
	resp := map[string]any{"challenge": enc, "app_id": req.AppID, "provider": req.Provider,
		"expires_at": time.Now().Add(time.Minute).UTC().Format(time.RFC3339), "expires_in": 60}
	switch req.Provider {
	case "pow":
		resp["pow"] = map[string]any{"algorithm": "sha256", "difficulty": s.difficulty}
	case "integrity":
		data, err := os.ReadFile(s.releaseFile)
		sum := sha256.Sum256(data)
		if err != nil || fmt.Sprintf("%x", sum) != req.Release {
			writeProblem(w, 403, "attestation-release-unknown", "")
			return
		}
		fc.salt = make([]byte, 32)
		rand.Read(fc.salt)
		for i := range 8 {
			off := int64(i * len(data) / 8)
			fc.ranges = append(fc.ranges, Range{Offset: off, Length: min(64, int64(len(data))-off)})
		}
		resp["integrity"] = map[string]any{"salt": base64.RawURLEncoding.EncodeToString(fc.salt), "ranges": fc.ranges}
	default:
		writeProblem(w, 403, "attestation-provider-not-allowed", "")
		return
	}
	s.mu.Lock()
	s.challenges[enc] = fc
	s.mu.Unlock()
	writeJSON(w, 200, resp)
}

func (s *fakeService) verify(w http.ResponseWriter, r *http.Request) {
	s.nVerify.Add(1)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	var req struct {
		Challenge      string `json:"challenge"`
		Counter        uint64 `json:"counter"`
		MAC            string `json:"mac"`
		InstallationID string `json:"installation_id"`
		Bind           string `json:"bind"`
	}
	if json.NewDecoder(r.Body).Decode(&req) != nil || req.Challenge == "" {
		writeProblem(w, 400, "bad-request", "")
		return
	}
	prv := r.PathValue("provider")
	s.mu.Lock()
	fc, ok := s.challenges[req.Challenge]
	delete(s.challenges, req.Challenge)
	s.mu.Unlock()
	switch {
	case !ok:
		writeProblem(w, 403, "attestation-challenge-invalid", "unknown")
		return
	case fc.provider != prv:
		writeProblem(w, 403, "attestation-challenge-invalid", "foreign")
		return
	}
	lvl := "work"
	switch prv {
	case "pow":
		buf := binary.BigEndian.AppendUint64(append([]byte(nil), fc.raw...), req.Counter)
		if zeroBits(sha256.Sum256(buf)) < s.difficulty {
			writeProblem(w, 403, "attestation-failed", "insufficient_work")
			return
		}
	case "integrity":
		lvl = "software"
		data, _ := os.ReadFile(s.releaseFile)
		m := hmac.New(sha256.New, fc.salt)
		for _, rg := range fc.ranges {
			m.Write(data[rg.Offset : rg.Offset+rg.Length])
		}
		if base64.RawURLEncoding.EncodeToString(m.Sum(nil)) != req.MAC {
			writeProblem(w, 403, "attestation-failed", "mac_mismatch")
			return
		}
	}
	writeJSON(w, 200, s.issue(fc.app, prv, lvl, req.InstallationID, req.Bind))
}

func (s *fakeService) issue(app, prv, lvl, did, bind string) map[string]any {
	now := s.now()
	jti := make([]byte, 12)
	rand.Read(jti)
	claims := map[string]any{"iss": testIssuer, "sub": app, "did": did, "iat": now.Unix(),
		"exp": now.Add(s.lifetime).Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti), "prv": prv, "lvl": lvl}
	if bind != "" {
		claims["pay"] = bind
	}
	resp := map[string]any{"token": signJWS(s.t, s.priv, "k1", TokenTyp, claims),
		"expires_at": now.Add(s.lifetime).UTC().Format(time.RFC3339), "expires_in": int(s.lifetime / time.Second),
		"app_id": app, "device_id": did, "provider": prv, "level": lvl}
	s.mu.Lock()
	if s.pins != "" {
		resp["pins"] = s.pins
	}
	s.mu.Unlock()
	return resp
}

// checkToken verifies a token with the service's key and returns its claims.
func (s *fakeService) checkToken(tok string) (map[string]any, bool) {
	payload, err := jws.Verify([]byte(tok), jws.WithKey(jwa.EdDSA(), s.priv.Public()))
	if err != nil {
		return nil, false
	}
	var m map[string]any
	json.Unmarshal(payload, &m)
	return m, true
}

func (s *fakeService) secrets(w http.ResponseWriter, r *http.Request) {
	tok := r.Header.Get(TokenHeader)
	if tok == "" {
		writeProblem(w, 401, "attestation-missing", "")
		return
	}
	claims, ok := s.checkToken(tok)
	if !ok {
		writeProblem(w, 401, "attestation-invalid", "")
		return
	}
	if time.Since(time.Unix(int64(claims["iat"].(float64)), 0)) > time.Minute {
		writeProblem(w, 401, "attestation-expired", "")
		return
	}
	writeJSON(w, 200, map[string]any{"secrets": map[string]string{"maps_api_key": "k-" + claims["sub"].(string)}})
}

func (s *fakeService) apiThing(w http.ResponseWriter, r *http.Request) {
	s.nAPI.Add(1)
	tok := r.Header.Get(TokenHeader)
	body := new(strings.Builder)
	if r.Body != nil {
		fmt.Fprint(body, readAll(r))
	}
	s.mu.Lock()
	s.apiTokens = append(s.apiTokens, tok)
	s.apiBodies = append(s.apiBodies, body.String())
	api := s.api
	s.mu.Unlock()
	claims, ok := s.checkToken(tok)
	if !ok {
		writeProblem(w, 401, "attestation-invalid", "")
		return
	}
	if api != nil {
		api(w, r, tok, claims)
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ok"})
}

func readAll(r *http.Request) string {
	b := new(strings.Builder)
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// zeroBits counts the leading zero bits of a hash, bit by bit.
func zeroBits(sum [32]byte) int {
	n := 0
	for _, b := range sum {
		for i := 7; i >= 0; i-- {
			if b>>uint(i)&1 != 0 {
				return n
			}
			n++
		}
	}
	return n
}

// newTestClient returns a client of s with the pow provider whose sleeps
// are recorded (and skipped) unless realSleep.
func newTestClient(t testing.TB, s *fakeService, mod func(*Config)) (*Client, *sleepLog) {
	t.Helper()
	cfg := Config{BaseURL: s.srv.URL, AppID: "shop-cli", Provider: ProofOfWork{}, HTTPClient: s.srv.Client()}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleepLog{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		sl.mu.Lock()
		sl.d = append(sl.d, d)
		sl.mu.Unlock()
		return ctx.Err()
	}
	return c, sl
}

type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *sleepLog) get() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.d...)
}
