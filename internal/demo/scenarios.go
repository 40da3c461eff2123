package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/client"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// DefaultScenarios returns the demo's scenarios in summary order. Their
// names are stable.
func DefaultScenarios() []Scenario {
	return []Scenario{
		{Name: "shoppers", Kind: Genuine, Description: "customers browse, sign in, check their orders and buy", Run: runShoppers},
		{Name: "admin", Kind: Genuine, Description: "carol lists users from the office network", Run: runAdmin},
		{Name: "denylisted-network", Kind: Attack, Description: "scraping, probing and password spraying from known abusive networks", Run: runDenylisted},
		{Name: "admin-probe", Kind: Attack, Description: "an outside address tries the back-office API with forged tokens", Run: runAdminProbe},
		{Name: "hefty-requests", Kind: Attack, Description: "oversized, deeply nested and malformed JSON bodies", Run: runHefty},
		{Name: "flood", Kind: Attack, Description: "one address requests the catalog as fast as it can", Run: runFlood},
		{Name: "password-guessing", Kind: Attack, Description: "one address guesses alice's password a few times a second", Run: runPasswordGuessing},
		{Name: "token-forgery", Kind: Attack, Description: "self-signed, alg:none and garbage tokens against profiles and orders", Run: runTokenForgery},
		{Name: "replayed-transfer", Kind: Attack, Description: "signed transfers captured on the wire are sent again with the stolen token", Run: runReplayedTransfer},
		{Name: "expired-token", Kind: Attack, Description: "a real but expired token from a leaked log", Run: runExpiredToken},
		{Name: "unattested-script", Kind: Attack, Description: "a script with the app's extracted signing key transfers without attesting", Run: runUnattestedScript},
		{Name: "tampered-app", Kind: Attack, Description: "a repackaged app (one byte patched) attests with the SDK and is refused at the challenge", Run: runTamperedApp},
		{Name: "replayed-attestation", Kind: Attack, Description: "attestation tokens captured from genuine transfers, on another account and sent again", Run: runReplayedAttestation},
		{Name: "expired-attestation", Kind: Attack, Description: "an attestation token captured 10 minutes ago", Run: runExpiredAttestation},
		{Name: "bola-profiles", Kind: Attack, Description: "a signed-in customer walks other customers' profiles and orders", Run: runBOLAProfiles},
		{Name: "sql-injection", Kind: Attack, Description: "SQL and NoSQL injection in the search box, a product id and the login form", Run: runSQLInjection},
		{Name: "xss", Kind: Attack, Description: "a customer posts reviews with script payloads and tries reflected XSS in search", Run: runXSS},
		{Name: "mass-assignment", Kind: Attack, Description: "a customer sets role admin on their profile and status paid on an order", Run: runMassAssignment},
		{Name: "shadow-endpoint", Kind: Attack, Description: "the undeclared /api/debug/vars and other endpoints missing from the spec", Run: runShadowEndpoint},
		{Name: "zombie-endpoint", Kind: Attack, Description: "the deprecated, unauthenticated v1 profile endpoint", Run: runZombieEndpoint},
		{Name: "ssrf-avatar", Kind: Attack, Description: "avatar URLs aimed at the cloud metadata service, localhost and private networks", Run: runSSRFAvatar},
	}
}

// User-Agents of the simulated clients.
const (
	uaFirefoxWin  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaChromeWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaEdgeWin     = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
	uaChromeMac   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaSafariMac   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
	uaChromeAndr  = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
	uaShopAppIOS  = "ShopApp/3.12.0 (iPhone; iOS 18.1; Scale/3.00)"
	uaShopAppAndr = "ShopApp/3.12.0 (Linux; Android 14; Pixel 7)"
	uaPyRequests  = "python-requests/2.32.3"
	uaCurl        = "curl/8.5.0"
	uaPyAiohttp   = "Python/3.12 aiohttp/3.10.10"
	uaHeadlessBot = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
)

// browserHeaders are what the shop's web front end sends with its fetches.
func browserHeaders(lang string) http.Header {
	return http.Header{
		"Accept":          {"application/json, text/plain, */*"},
		"Accept-Language": {lang},
		"Sec-Fetch-Site":  {"same-origin"},
		"Sec-Fetch-Mode":  {"cors"},
		"Sec-Fetch-Dest":  {"empty"},
	}
}

// appHeaders are what the shop's mobile app sends.
func appHeaders(lang string) http.Header {
	return http.Header{"Accept": {"application/json"}, "Accept-Language": {lang}}
}

// ---- shoppers (genuine) ----

// sharedNATIP is one public address in front of a household or a mobile
// carrier's NAT: several genuine customers share it.
const sharedNATIP = "89.246.5.17"

type shopperProfile struct {
	user    string // "" browses without signing in
	ip      string
	ua      string
	headers http.Header
}

// shopperProfiles are the genuine customers, from residential-looking
// addresses (IPv4 and IPv6); three of them share sharedNATIP.
var shopperProfiles = []shopperProfile{
	{"alice", "84.17.40.23", uaFirefoxWin, browserHeaders("de-DE,de;q=0.9,en;q=0.8")},
	{"alice", "2a02:8108:1dc0:3a00:5d1:9e2b:7c44:19a3", uaShopAppIOS, appHeaders("de-DE")},
	{"bob", sharedNATIP, uaChromeAndr, browserHeaders("nl-NL,nl;q=0.9,en;q=0.7")},
	{"", sharedNATIP, uaChromeWin, browserHeaders("nl-NL,nl;q=0.9")},
	{"", sharedNATIP, uaEdgeWin, browserHeaders("en-US,en;q=0.9")},
	{"carol", "92.184.105.8", uaSafariMac, browserHeaders("fr-FR,fr;q=0.9")},
	{"", "176.2.91.144", uaChromeMac, browserHeaders("en-GB,en;q=0.9")},
}

type orderRequest struct {
	ProductID int64  `json:"product_id"`
	Quantity  int    `json:"quantity"`
	Payment   string `json:"payment"`
}

func runShoppers(ctx context.Context, c *Client) {
	var wg sync.WaitGroup
	for _, p := range shopperProfiles {
		wg.Go(func() { shopperVisits(ctx, c, p) })
	}
	wg.Wait()
}

// shopperVisits is one customer's visits: browse, sign in, look at their own
// profile and orders, sometimes buy.
func shopperVisits(ctx context.Context, c *Client, p shopperProfile) {
	a := c.Agent(p.ip, p.ua, p.headers)
	if p.user != "" && c.attest != nil {
		// Customers who sign in use the shop's app, built with the apiguard
		// SDK: it attests the genuine release and adds a token to each
		// request (a fresh one to each transfer).
		a = c.AttestedAgent(p.ip, p.ua, p.headers, c.attest.genuine)
	}
	own := slices.Clone(fixtureOrders[p.user])
	productIDs := []int64{1, 2, 3, 4, 5, 6, 7, 8}
	if !think(ctx, 0, 600*time.Millisecond) { // customers do not arrive together
		return
	}
	for ctx.Err() == nil {
		a.Get(ctx, "/api/products")
		browseCatalog(ctx, a)
		for range 1 + rand.IntN(3) {
			if !think(ctx, 400*time.Millisecond, 1800*time.Millisecond) {
				return
			}
			a.Get(ctx, "/api/products/"+strconv.FormatInt(pick(productIDs), 10))
		}
		if p.user != "" {
			if a.Token() == "" {
				if !think(ctx, 300*time.Millisecond, 1200*time.Millisecond) {
					return
				}
				if r := a.Login(ctx, p.user, DemoPassword); !r.OK() {
					think(ctx, 2*time.Second, 4*time.Second)
					continue
				}
			}
			if chance(0.5) {
				think(ctx, 300*time.Millisecond, 1200*time.Millisecond)
				expired(a, a.Get(ctx, "/api/users/"+p.user))
			}
			reviewOrEditProfile(ctx, a, p.user)
			if len(own) > 0 && chance(0.6) {
				think(ctx, 300*time.Millisecond, 1200*time.Millisecond)
				expired(a, a.Get(ctx, "/api/orders/"+strconv.FormatInt(pick(own), 10)))
			}
			if chance(0.3) && think(ctx, 500*time.Millisecond, 2*time.Second) {
				// The app signs money transfers (RFC 9421) and attests
				// itself for each; the gateway refuses unsigned, altered,
				// replayed and unattested ones.
				expired(a, a.SignedPostJSON(ctx, "/api/transfer", map[string]any{
					"to": pick(transferPayees), "amount": float64(5 + rand.IntN(120)), "currency": "EUR",
				}))
			}
			if chance(0.4) && think(ctx, 500*time.Millisecond, 2*time.Second) {
				r := a.PostJSON(ctx, "/api/orders", orderRequest{
					ProductID: pick(productIDs), Quantity: 1 + rand.IntN(3),
					Payment: pick([]string{"card", "card", "paypal", "invoice", "voucher"}),
				})
				expired(a, r)
				var o struct {
					ID int64 `json:"id"`
				}
				if r.Status == http.StatusCreated && json.Unmarshal(r.Body, &o) == nil && o.ID > 0 {
					own = append(own, o.ID)
					think(ctx, 300*time.Millisecond, 900*time.Millisecond)
					a.Get(ctx, "/api/orders/"+strconv.FormatInt(o.ID, 10))
				}
			}
		}
		if !think(ctx, 1500*time.Millisecond, 4*time.Second) { // between visits
			return
		}
	}
}

// expired drops a token the shop no longer accepts, so the next visit signs
// in again.
func expired(a *Agent, r Response) {
	if r.Status == http.StatusUnauthorized && (!r.Denied || r.Reason == "token-expired") {
		a.SetToken("")
	}
}

// ---- admin (genuine) ----

// officeIP is carol's workstation in the office network the admin route
// allows (10.20.0.0/16 in apiguard.yaml).
const officeIP = "10.20.14.7"

func runAdmin(ctx context.Context, c *Client) {
	a := c.Agent(officeIP, uaChromeMac, browserHeaders("fr-FR,fr;q=0.9,en;q=0.8"))
	for ctx.Err() == nil {
		if a.Token() == "" {
			if r := a.Login(ctx, "carol", DemoPassword); !r.OK() {
				think(ctx, 2*time.Second, 4*time.Second)
				continue
			}
			if !think(ctx, 200*time.Millisecond, 800*time.Millisecond) {
				return
			}
		}
		expired(a, a.Get(ctx, "/api/admin/users"))
		if chance(0.3) && think(ctx, 500*time.Millisecond, 1500*time.Millisecond) {
			expired(a, a.Get(ctx, "/api/orders/"+strconv.Itoa(1001+rand.IntN(5))))
		}
		if !think(ctx, 1*time.Second, 3*time.Second) {
			return
		}
	}
}

// ---- denylisted-network (attack) ----

type attacker struct {
	ip, ua string
}

// denylistedAttackers come from the networks apiguard.yaml denies
// (203.0.113.0/24 and 198.51.100.0/24).
var denylistedAttackers = []attacker{
	{"203.0.113.45", uaPyRequests}, // catalog scraper
	{"203.0.113.77", uaCurl},       // endpoint prober
	{"198.51.100.23", uaHeadlessBot},
}

// probePaths are what scanners try on an API: debug endpoints, old
// versions, other users' data, API descriptions.
var probePaths = []string{
	"/api/debug/vars", "/api/v1/users/alice", "/api/v1/users/bob", "/api/users/carol",
	"/api/admin/users", "/api/orders/1001", "/api/swagger.json", "/api/graphql", "/api/v2/users/alice",
}

var sprayPasswords = []string{"123456", "password", "Winter2025!", "qwerty123", "letmein", "Password1"}

func runDenylisted(ctx context.Context, c *Client) {
	var wg sync.WaitGroup
	scraper, prober, sprayer := denylistedAttackers[0], denylistedAttackers[1], denylistedAttackers[2]
	wg.Go(func() { // walks the whole catalog again and again
		a := c.Agent(scraper.ip, scraper.ua, nil)
		for ctx.Err() == nil {
			a.Get(ctx, "/api/products")
			for id := 1; id <= 8 && think(ctx, 100*time.Millisecond, 400*time.Millisecond); id++ {
				a.Get(ctx, "/api/products/"+strconv.Itoa(id))
			}
		}
	})
	wg.Go(func() { // looks for forgotten and unprotected endpoints
		a := c.Agent(prober.ip, prober.ua, nil)
		for i := 0; ctx.Err() == nil; i++ {
			a.Get(ctx, probePaths[i%len(probePaths)])
			think(ctx, 200*time.Millisecond, 700*time.Millisecond)
		}
	})
	wg.Go(func() { // password spraying behind a browser User-Agent
		a := c.Agent(sprayer.ip, sprayer.ua, browserHeaders("en-US,en;q=0.9"))
		for ctx.Err() == nil {
			a.Login(ctx, pick([]string{"alice", "bob", "carol", "admin", "root"}), pick(sprayPasswords))
			a.SetToken("")
			think(ctx, 300*time.Millisecond, time.Second)
		}
	})
	wg.Wait()
}

// ---- admin-probe (attack) ----

// adminProbeIP is an outside address (a hosting or anonymising network),
// not in the office network.
const adminProbeIP = "185.220.101.47"

func runAdminProbe(ctx context.Context, c *Client) {
	a := c.Agent(adminProbeIP, uaPyRequests, nil)
	forged := forgedAdminTokens()
	type probe struct {
		method, path, token string
		body                []byte
	}
	probes := []probe{
		{"GET", "/api/admin/users", "", nil},
		{"GET", "/api/admin/users", "admin", nil},
		{"GET", "/api/admin/users?limit=1000", forged[0], nil},
		{"GET", "/api/admin/users", forged[1], nil},
		{"GET", "/api/admin/config", forged[0], nil},
		{"POST", "/api/admin/users", forged[0], []byte(`{"username":"mallory","password":"hunter22","role":"admin"}`)},
		{"GET", "/api/admin/", "", nil},
		{"GET", "/api/admin/export?format=csv", forged[1], nil},
	}
	for i := 0; ctx.Err() == nil; i++ {
		p := probes[i%len(probes)]
		a.SetToken(p.token)
		a.Do(ctx, p.method, p.path, p.body)
		think(ctx, 250*time.Millisecond, 900*time.Millisecond)
	}
}

// forgedAdminTokens are what an attacker makes up: a token with the admin
// role signed with the attacker's own key (right issuer and audience, wrong
// key), and one with "alg": "none".
func forgedAdminTokens() [2]string {
	var out [2]string
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": Issuer, "aud": Audience, "sub": "carol", "roles": []string{"admin"},
		"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
	})
	enc := base64.RawURLEncoding
	out[1] = enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "."
	out[0] = out[1] // fallback if signing fails
	raw, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return out
	}
	key, err := jwk.Import(raw)
	if err != nil || key.Set(jwk.KeyIDKey, "key-1") != nil {
		return out
	}
	tok, err := jwt.NewBuilder().Issuer(Issuer).Audience([]string{Audience}).Subject("carol").
		IssuedAt(now).Expiration(now.Add(24*time.Hour)).Claim("roles", []string{"admin"}).Build()
	if err != nil {
		return out
	}
	if signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key)); err == nil {
		out[0] = string(signed)
	}
	return out
}

// ---- hefty-requests (attack) ----

// heftyIP is an outside address that is on no list: only the body limits
// stop it.
const heftyIP = "45.155.205.233"

// heftyBodies are the attack's payloads, built once. The sizes sit between
// the api route's limits (64KiB, depth 16) and the global ones (1MiB, depth
// 32), so it is the route's tighter limits that stop them.
var heftyBodies = sync.OnceValue(func() map[string][]byte {
	deep := func(depth int, inner string) []byte {
		return []byte(`{"product_id":1,"quantity":1,"payment":"card","gift":` +
			strings.Repeat(`{"wrap":`, depth) + inner + strings.Repeat(`}`, depth) + `}`)
	}
	return map[string][]byte{
		// 200KiB: valid JSON, the bulk in a field the shop ignores.
		"large-order": []byte(`{"product_id":8,"quantity":1,"payment":"voucher","note":"` + strings.Repeat("A", 200<<10) + `"}`),
		// 150KiB of array elements.
		"large-transfer":  []byte(`{"to":"bob","amount":1,"currency":"EUR","memo":[` + strings.TrimSuffix(strings.Repeat("1,", 75<<10), ",") + `]}`),
		"deep-order":      deep(24, `"x"`),
		"deep-transfer":   []byte(`{"to":"bob","amount":1,"currency":"EUR","memo":` + strings.Repeat("[", 28) + strings.Repeat("]", 28) + `}`),
		"broken-order":    []byte(`{"product_id": 1, "quantity": 2, "payment": "card"`),
		"broken-transfer": []byte(`{"to": "bob", "amount": 10,, "currency": "EUR"}`),
	}
})

func runHefty(ctx context.Context, c *Client) {
	a := c.Agent(heftyIP, uaPyAiohttp, nil)
	// With bob's leaked password the attacker gets past the shop's own
	// authentication, so without apiguard the shop parses every body.
	a.Login(ctx, "bob", DemoPassword)
	bodies := heftyBodies()
	plan := []struct{ path, body string }{
		{"/api/orders", "large-order"},
		{"/api/orders", "deep-order"},
		{"/api/transfer", "broken-transfer"},
		{"/api/transfer", "large-transfer"},
		{"/api/transfer", "deep-transfer"},
		{"/api/orders", "broken-order"},
	}
	for i := 0; ctx.Err() == nil; i++ {
		if !think(ctx, 150*time.Millisecond, 600*time.Millisecond) {
			return
		}
		p := plan[i%len(plan)]
		a.Do(ctx, http.MethodPost, p.path, bodies[p.body])
	}
}

// ---- flood (attack) ----

// floodIP is a single host of a rented server blasting the catalog.
const floodIP = "45.155.205.233"

// runFlood sends as fast as four connections allow: a naive scraper or a
// layer-7 DoS. Per-client rate limits cut it down to the allowance while
// other clients are unaffected.
func runFlood(ctx context.Context, c *Client) {
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			a := c.Agent(floodIP, uaPyAiohttp, nil)
			for i := w; ctx.Err() == nil; i++ {
				if i%3 == 0 {
					a.Get(ctx, "/api/products")
				} else {
					a.Get(ctx, "/api/products/"+strconv.Itoa(1+i%8))
				}
			}
		})
	}
	wg.Wait()
}

// ---- password-guessing (attack) ----

// guessingIP is a residential proxy exit used to guess alice's password.
const guessingIP = "91.240.118.172"

var guessPasswords = []string{
	"alice", "alice123", "Alice2024!", "password", "123456", "qwerty", "letmein", "iloveyou",
	"sunshine", "princess", "dragon", "welcome1", "monkey", "football", "shopping", "Summer2025",
}

// runPasswordGuessing tries one account's password from one address, a few
// attempts a second. Only failed logins count towards the login route's
// failure limit, so genuine sign-ins are never slowed.
func runPasswordGuessing(ctx context.Context, c *Client) {
	a := c.Agent(guessingIP, uaChromeWin, browserHeaders("en-GB,en;q=0.8"))
	for i := 0; ctx.Err() == nil; i++ {
		a.Login(ctx, "alice", guessPasswords[i%len(guessPasswords)])
		a.SetToken("")
		think(ctx, 150*time.Millisecond, 400*time.Millisecond)
	}
}

// ---- token-forgery (attack) ----

// forgerIP is a hosting-provider address, not on any deny list: only the
// token checks stand between it and the API.
const forgerIP = "185.220.101.99"

// runTokenForgery presents tokens the identity provider never issued: one
// signed with the attacker's own key under the provider's key id, one with
// alg "none", and garbage.
func runTokenForgery(ctx context.Context, c *Client) {
	forged := forgedAdminTokens()
	tokens := []string{forged[0], forged[1], "eyJhbGciOiJFUzI1NiJ9.bm90LWpzb24.c2ln"}
	paths := []string{"/api/users/alice", "/api/users/carol", "/api/orders/1001", "/api/transfer"}
	a := c.Agent(forgerIP, uaPyRequests, nil)
	for i := 0; ctx.Err() == nil; i++ {
		a.SetToken(tokens[i%len(tokens)])
		if p := paths[i%len(paths)]; p == "/api/transfer" {
			a.PostJSON(ctx, p, map[string]any{"to": "DE89370400440532013000", "amount": 5000, "currency": "EUR"})
		} else {
			a.Get(ctx, p)
		}
		think(ctx, 150*time.Millisecond, 450*time.Millisecond)
	}
}

// ---- bola-profiles (attack) ----

// bolaIP is bob's home connection: a real customer with a real token,
// reading profiles that are not his (OWASP API1, broken object-level
// authorization). The shop itself would answer: only the gateway's rule
// stops it.
const bolaIP = "84.17.33.2"

var bolaTargets = []string{"alice", "carol", "admin", "dave", "eve", "mallory", "root", "support"}

func runBOLAProfiles(ctx context.Context, c *Client) {
	a := c.Agent(bolaIP, uaPyRequests, nil)
	for i := 0; ctx.Err() == nil; i++ {
		if a.Token() == "" {
			if r := a.Login(ctx, "bob", DemoPassword); !r.OK() {
				think(ctx, time.Second, 2*time.Second)
				continue
			}
		}
		if i%2 == 0 {
			expired(a, a.Get(ctx, "/api/users/"+bolaTargets[(i/2)%len(bolaTargets)]))
		} else {
			expired(a, a.Get(ctx, "/api/orders/"+strconv.Itoa(1001+(i/2)%12)))
		}
		think(ctx, 100*time.Millisecond, 300*time.Millisecond)
	}
}

// transferPayees are IBANs the customers pay.
var transferPayees = []string{"NL91ABNA0417164300", "FR1420041010050500013M02606", "DE44500105175407324931"}

// ---- replayed-transfer (attack) ----

// replayIP is the attacker on the path, replaying what it recorded.
const replayIP = "77.88.55.60"

// runReplayedTransfer takes signed transfers genuine customers sent (as a
// man in the middle or a compromised proxy would record them, token
// included) and sends each again, twice. While nothing fresh has been
// captured it replays an old recording, signed an hour ago.
func runReplayedTransfer(ctx context.Context, c *Client) {
	a := c.Agent(replayIP, uaPyRequests, nil)
	for {
		var cr capturedRequest
		select {
		case <-ctx.Done():
			return
		case cr = <-c.captured:
		case <-time.After(time.Second):
			cr = c.oldRecording(a)
		}
		if !think(ctx, 200*time.Millisecond, 600*time.Millisecond) { // let the original arrive first
			return
		}
		for range 2 {
			a.do(ctx, cr.method, cr.path, cr.body, func(req *http.Request) {
				for _, k := range []string{"Authorization", "Content-Digest", "Signature-Input", "Signature"} {
					req.Header[k] = cr.header[k]
				}
			})
			think(ctx, 100*time.Millisecond, 300*time.Millisecond)
		}
	}
}

// ---- expired-token (attack) ----

// expiredIP holds a token copied from a leaked log: real, signed by the
// shop's identity provider, but long expired.
const expiredIP = "45.141.84.120"

func runExpiredToken(ctx context.Context, c *Client) {
	tok, err := c.idp.issueAt("alice", []string{"customer"}, time.Now().Add(-24*time.Hour))
	if err != nil {
		return
	}
	a := c.Agent(expiredIP, uaCurl, nil)
	a.SetToken(tok)
	paths := []string{"/api/users/alice", "/api/orders/1001", "/api/users/alice"}
	for i := 0; ctx.Err() == nil; i++ {
		a.Get(ctx, paths[i%len(paths)])
		think(ctx, 300*time.Millisecond, 900*time.Millisecond)
	}
}

// oldRecording is a transfer the attacker recorded an hour ago.
func (c *Client) oldRecording(a *Agent) capturedRequest {
	body := []byte(`{"to":"DE44500105175407324931","amount":950,"currency":"EUR"}`)
	req, _ := http.NewRequest(http.MethodPost, c.base+"/api/transfer", nil)
	c.signer.signAt(req, body, time.Now().Add(-time.Hour))
	if tok, err := c.idp.issue("bob", []string{"customer"}); err == nil {
		req.Header.Set("Authorization", "Bearer "+tok) // the token too was stolen, and is fresh
	}
	return capturedRequest{method: http.MethodPost, path: "/api/transfer", header: req.Header, body: body}
}

// muleIBAN is the account the attackers move money to.
const muleIBAN = "GB33BUKB20201555555555"

// theftBody is a transfer to the attackers' account.
func theftBody() []byte {
	b, _ := json.Marshal(map[string]any{"to": muleIBAN, "amount": float64(900 + rand.IntN(4000)), "currency": "EUR"})
	return b
}

// ---- unattested-script (attack) ----

// scriptIP is a rented server running a script against bob's account.
const scriptIP = "5.188.62.140"

// runUnattestedScript is what request signing alone cannot stop: the key
// shipped in the app was extracted, so the script's transfers are signed
// like the app's, and it has bob's session token (phished). It cannot
// attest, having no genuine release, and sends no attestation token.
func runUnattestedScript(ctx context.Context, c *Client) {
	a := c.Agent(scriptIP, uaPyRequests, nil)
	for ctx.Err() == nil {
		if a.Token() == "" {
			tok, err := c.idp.issue("bob", []string{"customer"})
			if err != nil {
				return
			}
			a.SetToken(tok)
		}
		expired(a, a.SignedPost(ctx, "/api/transfer", theftBody(), nil))
		think(ctx, 300*time.Millisecond, 900*time.Millisecond)
	}
}

// ---- tampered-app (attack) ----

// tamperedIP is a rooted phone on a mobile network.
const tamperedIP = "37.120.198.33"

// runTamperedApp runs a repackaged app (one byte of the release patched,
// say to lift the transfer limit) with alice's session. It uses the SDK
// like the genuine app, but the service knows no release with its bytes:
// it is refused at the challenge and never gets a token, so its transfers
// are never sent.
func runTamperedApp(ctx context.Context, c *Client) {
	if c.attest == nil {
		return
	}
	a := c.AttestedAgent(tamperedIP, uaShopAppAndr, appHeaders("en-US"), c.attest.tampered)
	for ctx.Err() == nil {
		if a.Token() == "" {
			tok, err := c.idp.issue("alice", []string{"customer"})
			if err != nil {
				return
			}
			a.SetToken(tok)
		}
		expired(a, a.SignedPost(ctx, "/api/transfer", theftBody(), nil))
		// Slow enough to stay under the service's challenge rate limit.
		think(ctx, 2*time.Second, 4*time.Second)
	}
}

// ---- replayed-attestation (attack) ----

// attestReplayIP is the attacker on the path that records genuine
// transfers, attestation tokens included.
const attestReplayIP = "77.88.55.61"

// runReplayedAttestation takes the attestation token of a genuine transfer
// (already used, bound to its sender's Authorization) and sends it with a
// transfer from bob's account, then again with the original session: the
// binding refuses the first, single use the second. Both are signed with
// the extracted app key and carry valid sessions, so only the attestation
// check stands in the way. While nothing has been captured it tries a
// token recorded earlier from alice's app on bob's account.
func runReplayedAttestation(ctx context.Context, c *Client) {
	if c.attest == nil {
		return
	}
	a := c.Agent(attestReplayIP, uaPyRequests, nil)
	var bob, alice string
	for ctx.Err() == nil {
		if bob == "" || alice == "" {
			b, err1 := c.idp.issue("bob", []string{"customer"})
			al, err2 := c.idp.issue("alice", []string{"customer"})
			if err1 != nil || err2 != nil {
				return
			}
			bob, alice = "Bearer "+b, "Bearer "+al
		}
		var ct capturedToken
		used := false
		select {
		case <-ctx.Done():
			return
		case ct = <-c.tokens:
			used = true
		case <-time.After(time.Second):
			tok, err := c.attest.issueAttestation(alice, time.Now().Add(-30*time.Second), 5*time.Minute)
			if err != nil {
				return
			}
			ct = capturedToken{token: tok, authorization: alice}
		}
		send := func(authorization string) Response {
			return a.SignedPost(ctx, "/api/transfer", theftBody(), func(req *http.Request) {
				req.Header.Set("Authorization", authorization)
				req.Header.Set(client.TokenHeader, ct.token)
			})
		}
		if r := send(bob); r.Status == http.StatusUnauthorized && r.Reason == "token-expired" {
			bob = ""
		}
		if used && think(ctx, 100*time.Millisecond, 400*time.Millisecond) {
			send(ct.authorization)
		}
		think(ctx, 200*time.Millisecond, 600*time.Millisecond)
	}
}

// ---- expired-attestation (attack) ----

// expiredAttestIP replays what it recorded a while ago.
const expiredAttestIP = "45.141.84.121"

// runExpiredAttestation sends an attestation token recorded 10 minutes ago
// (genuine, bound to the session it is sent with, but expired after its
// 5 minutes) with signed transfers.
func runExpiredAttestation(ctx context.Context, c *Client) {
	if c.attest == nil {
		return
	}
	a := c.Agent(expiredAttestIP, uaCurl, nil)
	var att string
	for ctx.Err() == nil {
		if a.Token() == "" {
			tok, err := c.idp.issue("bob", []string{"customer"})
			if err != nil {
				return
			}
			a.SetToken(tok)
			if att, err = c.attest.issueAttestation("Bearer "+tok, time.Now().Add(-10*time.Minute), 5*time.Minute); err != nil {
				return
			}
		}
		expired(a, a.SignedPost(ctx, "/api/transfer", theftBody(), func(req *http.Request) {
			req.Header.Set(client.TokenHeader, att)
		}))
		think(ctx, 300*time.Millisecond, 900*time.Millisecond)
	}
}
