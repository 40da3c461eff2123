// Command genuine-client is a genuine client of the demo shop: it attests
// itself to the apiguard gateway with the software integrity provider (its
// own executable is the release), then calls the shop through the gateway
// with an Apiguard-Token on every request.
//
//	genuine-client -gateway http://127.0.0.1:8080 -app shop-cli [-user alice -password demo-password]
//
// It prints the status of each call and exits 1 when attestation (or a
// call) fails, printing the problem type and reason.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/apiguard/apiguard/client"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	code := run(ctx, os.Args[1:], os.Stdout)
	cancel()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout io.Writer) int {
	fs := flag.NewFlagSet("genuine-client", flag.ContinueOnError)
	fs.SetOutput(stdout)
	gateway := fs.String("gateway", "http://127.0.0.1:8080", "gateway base URL")
	app := fs.String("app", "shop-cli", "registered app id")
	user := fs.String("user", "", "shop user to sign in as (optional)")
	password := fs.String("password", "demo-password", "password of -user")
	to := fs.String("to", "bob", "recipient of the 1 EUR transfer made when signed in")
	release := fs.String("release", "", "release binary to attest with (default: this executable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := client.New(client.Config{BaseURL: *gateway, AppID: *app, Provider: &client.Integrity{Path: *release}})
	if err != nil {
		fmt.Fprintln(stdout, "error:", err)
		return 2
	}
	if _, err := c.Token(ctx, ""); err != nil {
		report(stdout, "attestation failed", err)
		return 1
	}
	fmt.Fprintln(stdout, "attested as", *app)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: c.Transport(nil, client.TransportOptions{
		BindHeader: "Authorization",
		SingleUse:  func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == "/api/transfer" },
	})}
	call := func(method, path, bearer string, body, out any) (int, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b) // replayable: the transport may retry once with a new token
		}
		req, err := http.NewRequestWithContext(ctx, method, *gateway+path, rd)
		if err != nil {
			return 0, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			report(stdout, method+" "+path, err)
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		fmt.Fprintf(stdout, "%s %s: %s\n", method, path, resp.Status)
		if resp.StatusCode >= 300 {
			var p struct{ Type, Reason string }
			if json.Unmarshal(b, &p) == nil && p.Type != "" {
				fmt.Fprintf(stdout, "  problem %s %s\n", p.Type, p.Reason)
			}
		} else if out != nil {
			_ = json.Unmarshal(b, out)
		}
		return resp.StatusCode, nil
	}

	if _, err := call("GET", "/api/products", "", nil, nil); err != nil {
		return 1
	}
	if *user == "" {
		return 0
	}
	var login struct{ Token string }
	if st, err := call("POST", "/api/login", "", map[string]string{"username": *user, "password": *password}, &login); err != nil || st != http.StatusOK || login.Token == "" {
		return 1
	}
	if _, err := call("GET", "/api/users/"+*user, login.Token, nil, nil); err != nil {
		return 1
	}
	if _, err := call("POST", "/api/transfer", login.Token, map[string]any{"to": *to, "amount": 1, "currency": "EUR"}, nil); err != nil {
		return 1
	}
	return 0
}

// report prints an error, with the problem type and reason when apiguard
// answered one.
func report(w io.Writer, what string, err error) {
	var p *client.ProblemError
	if errors.As(err, &p) {
		fmt.Fprintf(w, "%s: %d %s reason=%q\n", what, p.Status, p.Type, p.Reason)
		return
	}
	fmt.Fprintf(w, "%s: %v\n", what, err)
}
