package client

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// Claims are the claims of an attestation token.
type Claims struct {
	Issuer    string    // iss: the service's issuer
	Subject   string    // sub: app id
	DeviceID  string    // did: device id
	IssuedAt  time.Time // iat
	ExpiresAt time.Time // exp
	ID        string    // jti: unique token id
	Provider  string    // prv: provider
	Level     string    // lvl: "hardware", "software" or "work"
	Release   string    // rel: release id, when the provider identifies one
	Binding   string    // pay: base64url(SHA-256(bound header value)), when bound
}

// ParseTokenUnverified decodes the claims of a token WITHOUT verifying its
// signature. It is meant for cache timing and display: the app does not
// need to verify the tokens it is given, the gateway does.
func ParseTokenUnverified(token string) (Claims, error) {
	msg, err := jws.Parse([]byte(token), jws.WithCompact())
	if err != nil {
		return Claims{}, fmt.Errorf("apiguard: malformed token: %w", err)
	}
	var w struct {
		Iss string      `json:"iss"`
		Sub string      `json:"sub"`
		Did string      `json:"did"`
		Iat json.Number `json:"iat"`
		Exp json.Number `json:"exp"`
		Jti string      `json:"jti"`
		Prv string      `json:"prv"`
		Lvl string      `json:"lvl"`
		Rel string      `json:"rel"`
		Pay string      `json:"pay"`
	}
	if err := json.Unmarshal(msg.Payload(), &w); err != nil {
		return Claims{}, fmt.Errorf("apiguard: malformed token claims: %w", err)
	}
	iat, err := numericDate(w.Iat)
	if err != nil {
		return Claims{}, fmt.Errorf("apiguard: token claim iat: %w", err)
	}
	exp, err := numericDate(w.Exp)
	if err != nil {
		return Claims{}, fmt.Errorf("apiguard: token claim exp: %w", err)
	}
	return Claims{Issuer: w.Iss, Subject: w.Sub, DeviceID: w.Did, IssuedAt: iat, ExpiresAt: exp,
		ID: w.Jti, Provider: w.Prv, Level: w.Lvl, Release: w.Rel, Binding: w.Pay}, nil
}

// numericDate converts a JWT NumericDate (seconds, possibly fractional);
// absent is the zero time.
func numericDate(n json.Number) (time.Time, error) {
	if n == "" {
		return time.Time{}, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("not a date: %q", n)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
