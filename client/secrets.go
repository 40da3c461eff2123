package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Secrets fetches the runtime secrets the app may have, with a fresh token
// (the service accepts only recently issued ones):
// POST /.apiguard/attest/secrets → {"secrets": {name: value}}.
func (c *Client) Secrets(ctx context.Context) (map[string]string, error) {
	var out map[string]string
	err := c.retry(ctx, func() error {
		tok, err := c.FreshToken(ctx, "")
		if err != nil {
			return err
		}
		b, err := c.do(ctx, http.MethodPost, SecretsPath, http.Header{TokenHeader: {tok}}, struct{}{})
		if err != nil {
			return err
		}
		var w struct {
			Secrets map[string]string `json:"secrets"`
		}
		if err := json.Unmarshal(b, &w); err != nil || w.Secrets == nil {
			return errors.New("apiguard: malformed secrets response")
		}
		out = w.Secrets
		return nil
	})
	return out, err
}
