package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseProblem(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ct     string
		body   string
		want   ProblemError
	}{
		{"apiguard problem", 403, "application/problem+json",
			`{"type":"urn:apiguard:problem:attestation-failed","title":"Attestation failed","status":403,"detail":"bad mac","reason":"mac_mismatch"}`,
			ProblemError{Status: 403, Type: ProblemTypePrefix + "attestation-failed", Title: "Attestation failed", Detail: "bad mac", Reason: "mac_mismatch"}},
		{"content type with parameters", 429, "application/problem+json; charset=utf-8",
			`{"type":"urn:apiguard:problem:rate-limited","title":"Too many requests"}`,
			ProblemError{Status: 429, Type: ProblemTypePrefix + "rate-limited", Title: "Too many requests"}},
		{"the HTTP status wins over the body's", 401, "application/problem+json",
			`{"type":"urn:apiguard:problem:attestation-expired","status":200}`,
			ProblemError{Status: 401, Type: ProblemTypePrefix + "attestation-expired", Title: "Unauthorized"}},
		{"members of the wrong type are ignored", 403, "application/problem+json",
			`{"type":"urn:apiguard:problem:attestation-challenge-invalid","title":7,"reason":["used"]}`,
			ProblemError{Status: 403, Type: ProblemTypePrefix + "attestation-challenge-invalid", Title: "Forbidden"}},
		{"not JSON", 502, "text/html", `<html>bad gateway</html>`, ProblemError{Status: 502, Title: "Bad Gateway"}},
		{"JSON content type, broken body", 400, "application/problem+json", `{"type":`, ProblemError{Status: 400, Title: "Bad Request"}},
		{"no content type", 404, "", `{"type":"urn:apiguard:problem:not-found"}`, ProblemError{Status: 404, Title: "Not Found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseProblem(tt.status, tt.ct, []byte(tt.body))
			if *got != tt.want {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestProblemErrorAs(t *testing.T) {
	var err error = fmt.Errorf("wrapped: %w", &ProblemError{Status: 403, Type: ProblemTypePrefix + "attestation-failed", Title: "Attestation failed", Reason: "nonce_mismatch"})
	var p *ProblemError
	if !errors.As(err, &p) {
		t.Fatal("errors.As failed")
	}
	if p.Slug() != "attestation-failed" {
		t.Errorf("Slug = %q", p.Slug())
	}
	for _, s := range []string{"403", "urn:apiguard:problem:attestation-failed", "nonce_mismatch"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err.Error(), s)
		}
	}
	if (&ProblemError{Type: "https://shop/problems/x"}).Slug() != "" {
		t.Error("foreign type has a slug")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 2 ", 2 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"Mon, 23 Nov 2026 10:00:30 GMT", 30 * time.Second},
		{"Mon, 23 Nov 2026 09:00:00 GMT", 0}, // in the past
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeChallenge(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const c32 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" // 32 bytes
	tests := []struct {
		name    string
		body    string
		wantErr bool
		check   func(*Challenge) error
	}{
		{"integrity", `{"challenge":"` + c32 + `","app_id":"shop-cli","provider":"integrity","expires_at":"2026-11-23T10:01:00Z","expires_in":60,
			"integrity":{"salt":"c2FsdA","ranges":[{"offset":18234,"length":4096},{"offset":0,"length":1}]}}`, false,
			func(c *Challenge) error {
				if string(c.Integrity.Salt) != "salt" || len(c.Integrity.Ranges) != 2 || c.Integrity.Ranges[0] != (Range{18234, 4096}) {
					return fmt.Errorf("integrity = %+v", c.Integrity)
				}
				if !c.ExpiresAt.Equal(now.Add(time.Minute)) || c.AppID != "shop-cli" || c.Provider != "integrity" {
					return fmt.Errorf("got %+v", c)
				}
				return nil
			}},
		{"pow", `{"challenge":"` + c32 + `","pow":{"algorithm":"sha256","difficulty":18}}`, false,
			func(c *Challenge) error {
				if c.PoW == nil || c.PoW.Difficulty != 18 || c.PoW.Algorithm != "sha256" || c.Integrity != nil {
					return fmt.Errorf("pow = %+v", c.PoW)
				}
				return nil
			}},
		{"invalid expires_at falls back to expires_in (the doc's own example)",
			`{"challenge":"` + c32 + `","expires_at":"2026-11-23T10:00:60Z","expires_in":60}`, false,
			func(c *Challenge) error {
				if !c.ExpiresAt.Equal(now.Add(60 * time.Second)) {
					return fmt.Errorf("ExpiresAt = %v", c.ExpiresAt)
				}
				return nil
			}},
		{"no challenge", `{"app_id":"x"}`, true, nil},
		{"padded challenge", `{"challenge":"` + c32 + `="}`, true, nil},
		{"not JSON", `challenge`, true, nil},
		{"bad salt", `{"challenge":"` + c32 + `","integrity":{"salt":"+/","ranges":[{"offset":0,"length":1}]}}`, true, nil},
		{"no ranges", `{"challenge":"` + c32 + `","integrity":{"salt":"c2FsdA","ranges":[]}}`, true, nil},
		{"negative range", `{"challenge":"` + c32 + `","integrity":{"salt":"c2FsdA","ranges":[{"offset":-1,"length":1}]}}`, true, nil},
		{"overflowing range", `{"challenge":"` + c32 + `","integrity":{"salt":"c2FsdA","ranges":[{"offset":9223372036854775807,"length":1}]}}`, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeChallenge([]byte(tt.body), now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil {
				if err := tt.check(c); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func FuzzDecodeChallenge(f *testing.F) {
	f.Add([]byte(`{"challenge":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","integrity":{"salt":"c2FsdA","ranges":[{"offset":1,"length":2}]}}`))
	f.Add([]byte(`{"challenge":"AAEC","pow":{"algorithm":"sha256","difficulty":18},"expires_in":60}`))
	f.Add([]byte(`{"challenge":"AAEC","expires_at":"2026-11-23T10:00:60Z"}`))
	now := time.Now()
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeChallenge(body, now)
		if err != nil {
			return
		}
		if b, err := c.Bytes(); err != nil || len(b) == 0 {
			t.Fatalf("accepted challenge %q", c.Challenge)
		}
		if c.Integrity != nil {
			if len(c.Integrity.Salt) == 0 || len(c.Integrity.Ranges) == 0 {
				t.Fatalf("accepted integrity %+v", c.Integrity)
			}
			for _, r := range c.Integrity.Ranges {
				if r.Offset < 0 || r.Length < 0 || r.Offset+r.Length < 0 {
					t.Fatalf("accepted range %+v", r)
				}
			}
		}
	})
}

func FuzzParseProblem(f *testing.F) {
	f.Add(403, "application/problem+json", []byte(`{"type":"urn:apiguard:problem:attestation-failed","reason":"mac_mismatch"}`))
	f.Add(500, "text/plain", []byte(`oops`))
	f.Add(401, "application/json; charset=utf-8", []byte(`{"type":1}`))
	f.Fuzz(func(t *testing.T, status int, ct string, body []byte) {
		p := parseProblem(status, ct, body)
		if p.Status != status {
			t.Fatalf("status %d, want %d", p.Status, status)
		}
		if p.Type != "" && !utf8.ValidString(p.Type) {
			t.Fatalf("invalid type %q", p.Type)
		}
		_ = p.Error()
	})
}
