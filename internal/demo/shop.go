package demo

import (
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The shop is a small, realistic and deliberately vulnerable online-shop API
// with in-memory data. Each hole is marked "HOLE" below with the OWASP API
// Security Top 10 (2023) entry it illustrates; apiguard capabilities close
// them from the outside, one by one, without touching this code.
//
// Other tests use it as a fixture: keep users, passwords, products, order ids
// and response shapes stable.

// DemoPassword is the password of every demo user.
const DemoPassword = "demo-password"

// maxReviews bounds the reviews the shop keeps (the oldest go first).
const maxReviews = 1000

// maxCreatedOrders bounds the orders the shop keeps in memory beyond its
// fixture, so a long-running demo cannot grow without limit.
const maxCreatedOrders = 10_000

// problemTypeBase prefixes the shop's own problem types. They are not
// apiguard's (urn:apiguard:problem:...), which is how the demo tells a
// denial by the gateway from an error of the shop.
const problemTypeBase = "https://shop.demo.apiguard.local/problems/"

type address struct {
	Street     string `json:"street"`
	PostalCode string `json:"postal_code"`
	City       string `json:"city"`
	Country    string `json:"country"`
}

type userProfile struct {
	Username    string  `json:"username"`
	FullName    string  `json:"full_name"`
	Email       string  `json:"email"`
	Phone       string  `json:"phone"`
	Address     address `json:"address"`
	DateOfBirth string  `json:"date_of_birth"`
	CardLast4   string  `json:"card_last4"`
	IBAN        string  `json:"iban"`
	Role        string  `json:"role"`
	AvatarURL   string  `json:"avatar_url,omitempty"`
}

type user struct {
	userProfile
	password string
}

type product struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Category    string  `json:"category"`
	Price       float64 `json:"price"`
	Currency    string  `json:"currency"`
	Stock       int     `json:"stock"`
}

type order struct {
	ID              int64     `json:"id"`
	Owner           string    `json:"owner"`
	ProductID       int64     `json:"product_id"`
	Quantity        int       `json:"quantity"`
	UnitPrice       float64   `json:"unit_price"`
	Total           float64   `json:"total"`
	Currency        string    `json:"currency"`
	Payment         string    `json:"payment"`
	Status          string    `json:"status"`
	ShippingAddress address   `json:"shipping_address"`
	CreatedAt       time.Time `json:"created_at"`
}

type review struct {
	ID        int64     `json:"id"`
	ProductID int64     `json:"product_id"`
	Author    string    `json:"author"`
	Rating    int       `json:"rating"`
	Title     string    `json:"title"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at"`
}

type transfer struct {
	ID        int64     `json:"id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Amount    float64   `json:"amount"`
	Currency  string    `json:"currency"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// fixtureUsers are the demo accounts. carol is the shop's administrator.
func fixtureUsers() map[string]*user {
	return map[string]*user{
		"alice": {password: DemoPassword, userProfile: userProfile{
			Username: "alice", FullName: "Alice Martin", Email: "alice.martin@example.com", Phone: "+49 30 5550 1234",
			Address:     address{Street: "Kastanienallee 12", PostalCode: "10435", City: "Berlin", Country: "DE"},
			DateOfBirth: "1991-04-17", CardLast4: "4242", IBAN: "DE89370400440532013000", Role: "customer",
		}},
		"bob": {password: DemoPassword, userProfile: userProfile{
			Username: "bob", FullName: "Bob Janssen", Email: "bob.janssen@example.net", Phone: "+31 20 555 0199",
			Address:     address{Street: "Prinsengracht 263", PostalCode: "1016 GV", City: "Amsterdam", Country: "NL"},
			DateOfBirth: "1985-11-02", CardLast4: "1881", IBAN: "NL91ABNA0417164300", Role: "customer",
		}},
		"carol": {password: DemoPassword, userProfile: userProfile{
			Username: "carol", FullName: "Carol Nguyen", Email: "carol.nguyen@example.org", Phone: "+33 1 55 55 01 42",
			Address:     address{Street: "18 rue des Martyrs", PostalCode: "75009", City: "Paris", Country: "FR"},
			DateOfBirth: "1979-06-23", CardLast4: "5100", IBAN: "FR1420041010050500013M02606", Role: "admin",
		}},
	}
}

func fixtureProducts() map[int64]*product {
	list := []*product{
		{1, "Trail running shoes", "Lightweight shoes with a grippy sole for muddy trails.", "shoes", 129.90, "EUR", 42},
		{2, "Merino base layer", "Long-sleeve merino wool shirt, 200 g/m².", "clothing", 69.00, "EUR", 120},
		{3, "Insulated bottle 750 ml", "Keeps drinks cold for 24 hours and hot for 12.", "accessories", 24.50, "EUR", 300},
		{4, "Headlamp 400 lm", "Rechargeable headlamp with red night mode.", "accessories", 39.95, "EUR", 85},
		{5, "Ultralight rain jacket", "Waterproof, breathable, packs into its own pocket.", "clothing", 149.00, "EUR", 30},
		{6, "Trekking poles (pair)", "Carbon poles with cork grips.", "equipment", 89.90, "EUR", 55},
		{7, "Energy bars (box of 24)", "Oat and date bars, no added sugar.", "food", 32.40, "EUR", 500},
		{8, "Gift voucher 50 EUR", "Delivered by email within minutes.", "vouchers", 50.00, "EUR", 9999},
	}
	m := make(map[int64]*product, len(list))
	for _, p := range list {
		m[p.ID] = p
	}
	return m
}

// fixtureOrders maps each user to the orders they own from the start.
var fixtureOrders = map[string][]int64{
	"alice": {1001, 1002},
	"bob":   {1003, 1005},
	"carol": {1004},
}

func makeFixtureOrders(users map[string]*user, products map[int64]*product) map[int64]*order {
	day := func(d int) time.Time { return time.Date(2025, time.March, d, 10, 30, 0, 0, time.UTC) }
	rows := []struct {
		id      int64
		owner   string
		product int64
		qty     int
		payment string
		status  string
		at      time.Time
	}{
		{1001, "alice", 1, 1, "card", "delivered", day(3)},
		{1002, "alice", 3, 2, "paypal", "shipped", day(18)},
		{1003, "bob", 5, 1, "invoice", "paid", day(11)},
		{1004, "carol", 8, 1, "voucher", "delivered", day(7)},
		{1005, "bob", 7, 3, "card", "placed", day(20)},
	}
	m := make(map[int64]*order, len(rows))
	for _, r := range rows {
		p := products[r.product]
		m[r.id] = &order{
			ID: r.id, Owner: r.owner, ProductID: r.product, Quantity: r.qty,
			UnitPrice: p.Price, Total: round2(p.Price * float64(r.qty)), Currency: "EUR",
			Payment: r.payment, Status: r.status, ShippingAddress: users[r.owner].Address, CreatedAt: r.at,
		}
	}
	return m
}

// Shop is the demo shop API. It is an http.Handler, safe for concurrent use.
type Shop struct {
	idp      *identityProvider
	signer   *appSigner         // the app's transfer-signing key
	users    map[string]*user   // the map is read-only after NewShop; the profiles are guarded by mu
	products map[int64]*product // read-only after NewShop
	mux      *http.ServeMux
	routes   []shopRoute
	// fetch downloads a URL server-side (avatars); replaced in tests.
	fetch        func(url string)
	mu           sync.Mutex
	orders       map[int64]*order // guarded by mu
	nextID       int64            // guarded by mu; next order id
	created      int              // guarded by mu; orders created since start
	nextTxID     int64            // guarded by mu; next transfer id
	reviews      []review         // guarded by mu; oldest first
	nextReviewID int64            // guarded by mu
}

// shopRoute is one endpoint; declared says whether openapi.yaml describes it.
type shopRoute struct {
	method, path string
	declared     bool
	handler      http.HandlerFunc
}

// NewShop builds the shop with its fixture data and a fresh signing key.
func NewShop() (*Shop, error) {
	idp, err := newIdentityProvider()
	if err != nil {
		return nil, err
	}
	signer, err := newAppSigner()
	if err != nil {
		return nil, err
	}
	s := &Shop{idp: idp, signer: signer, users: fixtureUsers(), products: fixtureProducts(), nextID: 1006, nextTxID: 1, nextReviewID: 1}
	s.fetch = fetchInBackground
	s.orders = makeFixtureOrders(s.users, s.products)
	s.routes = []shopRoute{
		{"POST", "/api/login", true, s.login},
		{"GET", "/api/products", true, s.listProducts},
		{"GET", "/api/products/{id}", true, s.getProduct},
		{"GET", "/api/products/{id}/reviews", true, s.listReviews},
		{"POST", "/api/products/{id}/reviews", true, s.authed(s.createReview)},
		{"GET", "/api/users/{username}", true, s.authed(s.getUser)},
		{"PATCH", "/api/users/{username}", true, s.authed(s.updateUser)},
		{"POST", "/api/orders", true, s.authed(s.createOrder)},
		{"GET", "/api/orders/{id}", true, s.authed(s.getOrder)},
		{"POST", "/api/transfer", true, s.authed(s.createTransfer)},
		{"GET", "/api/admin/users", true, s.authed(s.adminListUsers)},
		{"GET", "/api/v1/users/{username}", true, s.getUserV1},
		{"GET", JWKSPath, true, s.jwks},
		{"GET", "/api/debug/vars", false, s.debugVars},
	}
	s.mux = http.NewServeMux()
	for _, r := range s.routes {
		s.mux.HandleFunc(r.method+" "+r.path, r.handler)
	}
	s.mux.HandleFunc("GET "+AppSigningKeysPath, s.appKeys) // for the gateway, not the API
	return s, nil
}

// ServeHTTP implements http.Handler. The mux's own answers (404, 405,
// redirects) are turned into JSON like every other error of the shop.
func (s *Shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(&jsonErrorWriter{ResponseWriter: w}, r)
}

// Token issues a token for a demo user as POST /api/login would, without the
// password. Tests use it to call the shop or the gateway as that user.
func (s *Shop) Token(username string) (string, error) {
	u, ok := s.profile(username)
	if !ok {
		return "", fmt.Errorf("demo: no user %q", username)
	}
	return s.idp.issue(u.Username, []string{u.Role})
}

// JWKS returns the identity provider's public key set as served at JWKSPath.
func (s *Shop) JWKS() []byte { return append([]byte(nil), s.idp.jwks...) }

// ---- handlers ----

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// login exchanges a username and password for a token.
//
// HOLE (API2 broken authentication, API6 sensitive business flows): no rate
// limit, no lockout and no bot defence, so credential stuffing and password
// spraying run at full speed.
func (s *Shop) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	u, ok := s.users[req.Username]
	// Compare against something even for unknown users so timing does not
	// reveal which usernames exist.
	want := DemoPassword
	if ok {
		want = u.password
	}
	if subtle.ConstantTimeCompare([]byte(req.Password), []byte(want)) != 1 || !ok {
		writeProblem(w, http.StatusUnauthorized, "invalid-credentials", "invalid username or password")
		return
	}
	p, _ := s.profile(u.Username)
	tok, err := s.idp.issue(p.Username, []string{p.Role})
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "internal", "could not issue a token")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// listProducts lists the catalog, optionally searched (q), filtered by
// category and max_price, and sorted.
//
// HOLE (API8 security misconfiguration, injection): the search term goes
// into the shop's SQL query unescaped (`... WHERE name LIKE '%<q>%'`); this
// in-memory shop only pretends, but the request an attacker sends is the
// real thing.
func (s *Shop) listProducts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	term := strings.ToLower(q.Get("q"))
	category := q.Get("category")
	maxPrice := math.Inf(1)
	if v := q.Get("max_price"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "invalid-query", "max_price must be a number")
			return
		}
		maxPrice = f
	}
	out := make([]*product, 0, len(s.products))
	for id := int64(1); id <= int64(len(s.products)); id++ {
		p, ok := s.products[id]
		if !ok || p.Price > maxPrice || (category != "" && p.Category != category) {
			continue
		}
		if term != "" && !strings.Contains(strings.ToLower(p.Name+" "+p.Description), term) {
			continue
		}
		out = append(out, p)
	}
	switch q.Get("sort") {
	case "price":
		slices.SortStableFunc(out, func(a, b *product) int { return cmp.Compare(a.Price, b.Price) })
	case "-price":
		slices.SortStableFunc(out, func(a, b *product) int { return cmp.Compare(b.Price, a.Price) })
	case "name":
		slices.SortStableFunc(out, func(a, b *product) int { return strings.Compare(a.Name, b.Name) })
	}
	writeJSON(w, http.StatusOK, out)
}

type reviewRequest struct {
	Rating int    `json:"rating"`
	Title  string `json:"title"`
	Text   string `json:"text"`
}

// listReviews returns a product's reviews, newest first.
func (s *Shop) listReviews(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if _, found := s.products[id]; !found {
		writeProblem(w, http.StatusNotFound, "not-found", "no such product")
		return
	}
	out := []review{}
	s.mu.Lock()
	for i := len(s.reviews) - 1; i >= 0; i-- {
		if s.reviews[i].ProductID == id {
			out = append(out, s.reviews[i])
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// createReview stores a customer's review of a product.
//
// HOLE (API8 security misconfiguration, stored XSS): title and text are
// stored as sent and the shop's web front end renders them as HTML, so a
// <script> in a review runs in every visitor's browser.
func (s *Shop) createReview(w http.ResponseWriter, r *http.Request, who principal) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if _, found := s.products[id]; !found {
		writeProblem(w, http.StatusNotFound, "not-found", "no such product")
		return
	}
	var req reviewRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Rating < 1 || req.Rating > 5 {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-rating", "rating must be between 1 and 5")
		return
	}
	rv := review{ProductID: id, Author: who.Subject, Rating: req.Rating, Title: req.Title, Text: req.Text,
		CreatedAt: time.Now().UTC().Truncate(time.Second)}
	s.mu.Lock()
	rv.ID = s.nextReviewID
	s.nextReviewID++
	if len(s.reviews) >= maxReviews {
		s.reviews = slices.Delete(s.reviews, 0, 1)
	}
	s.reviews = append(s.reviews, rv)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, rv)
}

func (s *Shop) getProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	p, found := s.products[id]
	if !found {
		writeProblem(w, http.StatusNotFound, "not-found", "no such product")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// getUser returns a user's profile with their personal data.
//
// HOLE (API1 broken object level authorization): any signed-in user can read
// any other user's profile; the handler never compares the path with the
// token's subject.
func (s *Shop) getUser(w http.ResponseWriter, r *http.Request, _ principal) {
	p, ok := s.profile(r.PathValue("username"))
	if !ok {
		writeProblem(w, http.StatusNotFound, "not-found", "no such user")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// updateUser changes a profile (name, contact details, avatar).
//
// HOLE (API1): like getUser it never compares the path with the caller.
//
// HOLE (API3 broken object property level authorization, "mass
// assignment"): the body is decoded straight into the stored profile, so
// "role": "admin" makes the caller an administrator at their next sign-in.
//
// HOLE (API7 server-side request forgery): the shop downloads avatar_url
// from its own network to make a thumbnail, whatever address it names: a
// cloud metadata service, the admin port of a neighbour, localhost.
func (s *Shop) updateUser(w http.ResponseWriter, r *http.Request, _ principal) {
	u, ok := s.users[r.PathValue("username")]
	if !ok {
		writeProblem(w, http.StatusNotFound, "not-found", "no such user")
		return
	}
	s.mu.Lock()
	upd := u.userProfile
	s.mu.Unlock()
	if !decodeJSON(w, r, &upd) {
		return
	}
	upd.Username = u.Username // the one field it does protect
	s.mu.Lock()
	u.userProfile = upd
	s.mu.Unlock()
	if upd.AvatarURL != "" {
		s.fetch(upd.AvatarURL)
	}
	writeJSON(w, http.StatusOK, upd)
}

// profile returns a copy of a user's profile.
func (s *Shop) profile(name string) (userProfile, bool) {
	u, ok := s.users[name]
	if !ok {
		return userProfile{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return u.userProfile, true
}

// avatarFetches bounds the downloads in flight, so a flood of profile
// updates cannot pile up goroutines.
var avatarFetches = make(chan struct{}, 4)

// fetchInBackground downloads url as the shop's thumbnail job would, in the
// background and with a short timeout; failures are ignored.
func fetchInBackground(url string) {
	select {
	case avatarFetches <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-avatarFetches }()
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
	}()
}

// getOrder returns an order, including the owner's shipping address.
//
// HOLE (API1 broken object level authorization): no ownership check, and
// order ids are sequential, so walking 1001, 1002, ... reads every
// customer's orders and addresses.
func (s *Shop) getOrder(w http.ResponseWriter, r *http.Request, _ principal) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	o, found := s.orders[id]
	var cp order
	if found {
		cp = *o
	}
	s.mu.Unlock()
	if !found {
		writeProblem(w, http.StatusNotFound, "not-found", "no such order")
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

var paymentMethods = map[string]bool{"card": true, "paypal": true, "invoice": true, "voucher": true}

// createOrder places an order for the caller.
//
// HOLE (API3 broken object property level authorization, "mass
// assignment"): the body is decoded straight into the order model, so a
// client that adds "status": "paid" gets an order marked paid without
// paying. Unknown fields are silently ignored.
//
// HOLE (API4 unrestricted resource consumption): like every handler here it
// reads bodies of any size and nesting depth.
func (s *Shop) createOrder(w http.ResponseWriter, r *http.Request, who principal) {
	var o order
	if !decodeJSON(w, r, &o) {
		return
	}
	p, ok := s.products[o.ProductID]
	switch {
	case !ok:
		writeProblem(w, http.StatusUnprocessableEntity, "unknown-product", "no such product")
		return
	case o.Quantity < 1 || o.Quantity > 100:
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-quantity", "quantity must be between 1 and 100")
		return
	case !paymentMethods[o.Payment]:
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-payment", "payment must be card, paypal, invoice or voucher")
		return
	}
	u, ok := s.profile(who.Subject)
	if !ok {
		writeProblem(w, http.StatusForbidden, "unknown-customer", "no customer account for this token")
		return
	}
	o.Owner = u.Username
	o.UnitPrice = p.Price
	o.Total = round2(p.Price * float64(o.Quantity))
	o.Currency = "EUR"
	o.ShippingAddress = u.Address
	o.CreatedAt = time.Now().UTC().Truncate(time.Second)
	if o.Status == "" { // the mass-assignment hole: a client-sent status stays
		o.Status = "placed"
	}
	s.mu.Lock()
	if s.created >= maxCreatedOrders {
		s.mu.Unlock()
		writeProblem(w, http.StatusServiceUnavailable, "order-book-full", "the demo shop takes no more orders")
		return
	}
	o.ID = s.nextID
	s.nextID++
	s.created++
	s.orders[o.ID] = &o
	s.mu.Unlock()
	w.Header().Set("Location", "/api/orders/"+strconv.FormatInt(o.ID, 10))
	writeJSON(w, http.StatusCreated, o)
}

type transferRequest struct {
	To       string  `json:"to"`
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
}

var ibanRe = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)

// createTransfer sends money from the caller's wallet.
//
// HOLE (API6 unrestricted access to sensitive business flows): no velocity
// limit, no step-up authentication and no check of the destination, so a
// stolen token can drain an account in a loop.
func (s *Shop) createTransfer(w http.ResponseWriter, r *http.Request, who principal) {
	var req transferRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	_, toUser := s.users[req.To]
	switch {
	case !toUser && !ibanRe.MatchString(req.To):
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-destination", "to must be an IBAN or a customer's username")
		return
	case req.Currency != "EUR":
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-currency", "only EUR transfers are supported")
		return
	case math.IsNaN(req.Amount) || req.Amount <= 0 || req.Amount > 10_000:
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-amount", "amount must be more than 0 and at most 10000")
		return
	}
	s.mu.Lock()
	id := s.nextTxID
	s.nextTxID++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, transfer{
		ID: id, From: who.Subject, To: req.To, Amount: round2(req.Amount), Currency: "EUR",
		Status: "completed", CreatedAt: time.Now().UTC().Truncate(time.Second),
	})
}

// adminListUsers is the back office's user list. It checks the role
// properly; apiguard adds a network restriction on top.
func (s *Shop) adminListUsers(w http.ResponseWriter, _ *http.Request, who principal) {
	if !who.hasRole("admin") {
		writeProblem(w, http.StatusForbidden, "forbidden", "the admin role is required")
		return
	}
	out := make([]userProfile, 0, len(s.users))
	for _, name := range []string{"alice", "bob", "carol"} {
		p, _ := s.profile(name)
		out = append(out, p)
	}
	writeJSON(w, http.StatusOK, out)
}

// getUserV1 is the first version of the profile endpoint, kept "for old
// mobile apps".
//
// HOLE (API9 improper inventory management, "zombie API"; API2): deprecated
// but still deployed, and it predates authentication: anyone can read any
// customer's personal data.
func (s *Shop) getUserV1(w http.ResponseWriter, r *http.Request) {
	p, ok := s.profile(r.PathValue("username"))
	if !ok {
		writeProblem(w, http.StatusNotFound, "not-found", "no such user")
		return
	}
	w.Header().Set("Deprecation", "@1735689600") // RFC 9745: deprecated since 2025-01-01
	writeJSON(w, http.StatusOK, p)
}

func (s *Shop) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.idp.jwks)
}

// debugVars is a leftover diagnostics endpoint.
//
// HOLE (API9 improper inventory management, "shadow API"; API8 security
// misconfiguration): not in openapi.yaml, unauthenticated, and it leaks
// internal configuration including a secret. The secret is fake.
func (s *Shop) debugVars(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	orders := len(s.orders)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"service": "shop-api",
		"version": "1.4.0-rc2",
		"build":   "9f3c2ab (dirty)",
		"config": map[string]any{
			"database_url":        "postgres://shop:Sh0pDemo!@db.internal:5432/shop",
			"payment_provider":    "https://payments.internal/v2",
			"payment_api_key":     "sk_live_DEMO_NOT_A_REAL_KEY_4f9a2c7e1b",
			"jwt_issuer":          Issuer,
			"feature_flags":       []string{"new-checkout", "legacy-v1-users"},
			"debug_endpoints":     true,
			"admin_allowed_cidrs": []string{"0.0.0.0/0"},
		},
		"stats": map[string]any{"orders": orders, "users": len(s.users)},
	})
}

// ---- helpers ----

// authed requires a valid bearer token and passes its principal on.
func (s *Shop) authed(h func(http.ResponseWriter, *http.Request, principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop"`)
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
			return
		}
		who, err := s.idp.verify(strings.TrimSpace(tok))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop", error="invalid_token"`)
			writeProblem(w, http.StatusUnauthorized, "invalid-token", "the bearer token is invalid or expired")
			return
		}
		h(w, r, who)
	}
}

// pathID parses the {id} path value; a non-integer is a 400.
func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid-id", "id must be an integer")
		return 0, false
	}
	return id, true
}

// decodeJSON decodes the request body into v, answering 400 (or 415) itself
// when it cannot. See the API4 hole on createOrder: no size or depth limit.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type", "send application/json")
			return false
		}
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			writeProblem(w, http.StatusBadRequest, "invalid-body", fmt.Sprintf("field %s has the wrong type", te.Field))
			return false
		}
		writeProblem(w, http.StatusBadRequest, "invalid-json", "the body is not valid JSON")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "internal", "could not encode the response")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// shopProblem is the shop's RFC 9457 error body.
type shopProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, slug, detail string) {
	b, _ := json.Marshal(shopProblem{Type: problemTypeBase + slug, Title: http.StatusText(status), Status: status, Detail: detail})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Del("Location")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// jsonErrorWriter turns non-JSON error responses (the mux's plain-text 404
// and 405, its redirects) into the shop's JSON problems, so every non-2xx
// from the shop is JSON.
type jsonErrorWriter struct {
	http.ResponseWriter
	swallow bool // the body being written is being replaced
	wrote   bool
}

func (j *jsonErrorWriter) WriteHeader(code int) {
	if j.wrote {
		return
	}
	j.wrote = true
	h := j.Header()
	if code >= 300 && !isJSON(h.Get("Content-Type")) {
		j.swallow = true
		slug := map[int]string{404: "not-found", 405: "method-not-allowed"}[code]
		if slug == "" {
			slug = strings.ToLower(strings.ReplaceAll(http.StatusText(code), " ", "-"))
		}
		detail := ""
		if loc := h.Get("Location"); loc != "" {
			detail = "see " + loc
		}
		b, _ := json.Marshal(shopProblem{Type: problemTypeBase + slug, Title: http.StatusText(code), Status: code, Detail: detail})
		h.Set("Content-Type", "application/problem+json")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		j.ResponseWriter.WriteHeader(code)
		_, _ = j.ResponseWriter.Write(b)
		return
	}
	j.ResponseWriter.WriteHeader(code)
}

func (j *jsonErrorWriter) Write(b []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusOK)
	}
	if j.swallow {
		return len(b), nil
	}
	return j.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (j *jsonErrorWriter) Unwrap() http.ResponseWriter { return j.ResponseWriter }

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
