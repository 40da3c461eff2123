// Package client is the Go SDK of apiguard app attestation (see
// docs/attestation.md). A Client proves to the gateway's attestation
// service that it is a genuine build of a registered app, caches the
// short-lived tokens it gets, and adds them to requests:
//
//	c, err := client.New(client.Config{
//		BaseURL:  "https://api.example.com",
//		AppID:    "shop-cli",
//		Provider: &client.Integrity{}, // or client.ProofOfWork{}, or a platform provider
//	})
//	if err != nil { … }
//	hc := &http.Client{Transport: c.Transport(nil, client.TransportOptions{BindHeader: "Authorization"})}
//	resp, err := hc.Get("https://api.example.com/api/products")
//
// Attestation failures are *ProblemError values (errors.As) whose Type and
// Reason name the failed check. Network errors, 5xx and 429 are retried with
// exponential backoff for as long as the context allows.
//
// Certificate pinning: Pins fetches and verifies the service's signed pin
// set, and PinnedTLSConfig returns a tls.Config that enforces it. The pin
// set is verified against Config.TrustedKeys when the app ships the
// service's public keys; otherwise against the JWK Set fetched from the
// service, which over the same connection is trust on first use.
package client
