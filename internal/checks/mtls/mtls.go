// Package mtls authenticates clients by TLS client certificate, verified
// per route against configured CAs, and enforces RFC 8705
// certificate-bound access tokens.
package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Config is the mtls check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// CAFiles are PEM files of the CAs client certificates must chain to.
	CAFiles []string `yaml:"ca_files"`
	// Required refuses requests without a verified certificate (default
	// true); when false such requests pass without a certificate identity.
	Required *bool `yaml:"required,omitempty"`
	// AllowedSubjects, when set, admits only certificates whose subject
	// common name or one of whose SANs is listed.
	AllowedSubjects []string `yaml:"allowed_subjects,omitempty"`
	// BoundTokens requires an access token carrying cnf.x5t#S256 (RFC 8705)
	// to be bound to this certificate. Needs a token check earlier on the
	// route; tokens without cnf are not affected unless RequireBinding.
	BoundTokens    bool `yaml:"bound_tokens,omitempty"`
	RequireBinding bool `yaml:"require_binding,omitempty"`
	// SubjectHeader forwards the certificate subject upstream in this header
	// (a client-sent header of that name is always removed).
	SubjectHeader string `yaml:"subject_header,omitempty"`
}

// Validate reports every invalid field under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	if len(c.CAFiles) == 0 {
		errs.Add(field.Join(path, "ca_files"), "at least one CA file is required")
	}
	for i, f := range c.CAFiles {
		if _, err := loadPool([]string{f}); err != nil {
			errs.Add(field.Index(field.Join(path, "ca_files"), i), "%v", err)
		}
	}
	if c.RequireBinding && !c.BoundTokens {
		errs.Add(field.Join(path, "require_binding"), "needs bound_tokens: true")
	}
	if h := c.SubjectHeader; h != "" && strings.ContainsAny(h, " :\r\n") {
		errs.Add(field.Join(path, "subject_header"), "not a header name: %q", h)
	}
}

func loadPool(files []string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s", f)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", f)
		}
	}
	return pool, nil
}

// Check is the built mtls check.
type Check struct {
	roots         *x509.CertPool
	required      bool
	allowed       []string
	bound, mustBe bool
	subjectHeader string
	now           func() time.Time

	mu       sync.Mutex
	verified map[[32]byte]time.Time // leaf fingerprint -> verified until
}

var _ pipeline.Check = (*Check)(nil)

// New builds the check.
func New(cfg Config) (*Check, error) {
	pool, err := loadPool(cfg.CAFiles)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	return &Check{roots: pool, required: cfg.Required == nil || *cfg.Required, allowed: cfg.AllowedSubjects,
		bound: cfg.BoundTokens, mustBe: cfg.RequireBinding, subjectHeader: http.CanonicalHeaderKey(cfg.SubjectHeader),
		now: time.Now, verified: map[[32]byte]time.Time{}}, nil
}

// Name implements pipeline.Check.
func (*Check) Name() string { return "mtls" }

func deny(status int, slug, detail string) pipeline.Verdict {
	v := pipeline.Verdict{Action: pipeline.Deny, Status: status, Reason: slug, Detail: detail}
	if status == http.StatusUnauthorized {
		v.Headers = http.Header{"Www-Authenticate": {`Mutual realm="apiguard"`}}
	}
	return v
}

// Check implements pipeline.Check.
func (c *Check) Check(_ context.Context, req *pipeline.Request) (pipeline.Verdict, error) {
	r := req.HTTP
	if c.subjectHeader != "" && r != nil {
		r.Header.Del(c.subjectHeader)
	}
	if r == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		if c.required {
			return deny(http.StatusUnauthorized, "client-certificate-required", "a client certificate is required"), nil
		}
		return c.checkBinding(req, nil)
	}
	certs := r.TLS.PeerCertificates
	leaf := certs[0]
	if err := c.verify(leaf, certs[1:]); err != nil {
		return deny(http.StatusUnauthorized, "client-certificate-invalid", "the client certificate is not trusted here"), nil
	}
	sans := names(leaf)
	if len(c.allowed) > 0 && !slices.Contains(c.allowed, leaf.Subject.CommonName) && !slices.ContainsFunc(sans, func(n string) bool { return slices.Contains(c.allowed, n) }) {
		return deny(http.StatusForbidden, "client-certificate-not-allowed", "this client certificate is not allowed here"), nil
	}
	sum := sha256.Sum256(leaf.Raw)
	req.Identity.CertSubject = leaf.Subject.String()
	req.Identity.CertSANs = sans
	req.Identity.CertThumbprint = base64.RawURLEncoding.EncodeToString(sum[:])
	if c.subjectHeader != "" {
		r.Header.Set(c.subjectHeader, req.Identity.CertSubject)
	}
	return c.checkBinding(req, leaf)
}

// verify checks the chain once per certificate (a keep-alive connection
// sends the same certificate with every request), caching success until the
// certificate expires or an hour passes.
func (c *Check) verify(leaf *x509.Certificate, intermediates []*x509.Certificate) error {
	sum := sha256.Sum256(leaf.Raw)
	now := c.now()
	c.mu.Lock()
	until, ok := c.verified[sum]
	c.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	pool := x509.NewCertPool()
	for _, ic := range intermediates {
		pool.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return err
	}
	c.mu.Lock()
	if len(c.verified) >= 10000 {
		clear(c.verified) // bounded: start over rather than grow
	}
	until = now.Add(time.Hour)
	if leaf.NotAfter.Before(until) {
		until = leaf.NotAfter
	}
	c.verified[sum] = until
	c.mu.Unlock()
	return nil
}

var errNoCnf = errors.New("no cnf")

// checkBinding enforces RFC 8705 §3: a token with cnf.x5t#S256 is only
// valid with the certificate it names.
func (c *Check) checkBinding(req *pipeline.Request, leaf *x509.Certificate) (pipeline.Verdict, error) {
	if !c.bound {
		return pipeline.Allowed, nil
	}
	want, err := cnfThumbprint(req.Identity.Claims)
	switch {
	case errors.Is(err, errNoCnf):
		if c.mustBe && req.Identity.Subject != "" {
			return deny(http.StatusUnauthorized, "token-not-bound", "the access token must be bound to a client certificate"), nil
		}
		return pipeline.Allowed, nil
	case err != nil || leaf == nil || want != req.Identity.CertThumbprint:
		return deny(http.StatusUnauthorized, "token-binding-mismatch", "the access token is bound to another client certificate"), nil
	}
	return pipeline.Allowed, nil
}

func cnfThumbprint(claims map[string]any) (string, error) {
	cnf, ok := claims["cnf"].(map[string]any)
	if !ok {
		return "", errNoCnf
	}
	t, ok := cnf["x5t#S256"].(string)
	if !ok {
		return "", errNoCnf
	}
	return t, nil
}

// names lists a certificate's subject alternative names.
func names(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
