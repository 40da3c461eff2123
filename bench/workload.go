package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// A workload is the fixed, deterministic list of requests the load
// generator cycles through, round-robin, in both modes (one shared
// counter: every target gets the same mix in the same order).
//
//   - single: one request, GET -path or POST -path with a -post-bytes JSON
//     body (the harness's original workload).
//   - shop: an online shop's API, described by shopSpec (enforced by the
//     openapi-waf profile): 40% product pages, 20% searches, 20% orders
//     (~1 KB JSON, about half typed values), 20% reviews.
const (
	workloadSingle = "single"
	workloadShop   = "shop"
)

func workloadNames() []string { return []string{workloadSingle, workloadShop} }

// workReq is one request of a workload.
type workReq struct {
	kind   int    // index into workload.kinds
	method string // GET or POST
	path   string // path and query
	body   []byte // nil: no body; otherwise sent as application/json
}

// workload is a cycle of requests plus what is sent with every one.
type workload struct {
	name   string
	kinds  []string // request kinds, for the per-kind latency breakdown
	reqs   []workReq
	header http.Header // extra headers on every request
	desc   string      // one line for the report
}

// readyPath is a GET path that every target must answer 2xx before it is
// measured.
func (w *workload) readyPath() string {
	for _, r := range w.reqs {
		if r.method == http.MethodGet {
			return r.path
		}
	}
	return w.reqs[0].path
}

func newWorkload(o *options) (*workload, error) {
	switch o.workload {
	case workloadSingle:
		return singleWorkload(o.path, o.postBytes), nil
	case workloadShop:
		return shopWorkload(), nil
	}
	return nil, fmt.Errorf("unknown workload %q (known: %s)", o.workload, strings.Join(workloadNames(), ", "))
}

// singleWorkload is one request, repeated: GET path, or POST path with a
// JSON body of postBytes bytes.
func singleWorkload(path string, postBytes int) *workload {
	r := workReq{method: http.MethodGet, path: path}
	desc := "GET " + path
	if postBytes > 0 {
		r.method, r.body = http.MethodPost, makeJSON(postBytes)
		desc = fmt.Sprintf("POST %s (%d-byte JSON body)", path, len(r.body))
	}
	return &workload{name: workloadSingle, kinds: []string{r.method + " " + path}, reqs: []workReq{r}, desc: desc}
}

// Request kinds of the shop workload.
const (
	kindProduct = iota
	kindSearch
	kindOrder
	kindReview
)

var shopKinds = []string{
	kindProduct: "GET product",
	kindSearch:  "GET search",
	kindOrder:   "POST order",
	kindReview:  "POST review",
}

// shopHeader is what the shop's mobile app sends with every request.
var shopHeader = http.Header{
	"User-Agent": {"shop-app/1.4.2 (iPhone; iOS 18.1)"},
	"Accept":     {"application/json"},
}

// shopWorkload is a cycle of 20 requests: four times the pattern product,
// search, product, order, review, with different values each time.
func shopWorkload() *workload {
	w := &workload{name: workloadShop, kinds: shopKinds, header: shopHeader}
	productIDs := []int{1001, 23, 48213, 7, 310, 99999, 1542, 86}
	for i := range 4 {
		w.reqs = append(w.reqs,
			workReq{kind: kindProduct, method: http.MethodGet, path: fmt.Sprintf("/api/products/%d", productIDs[2*i])},
			workReq{kind: kindSearch, method: http.MethodGet, path: shopSearches[i].path()},
			workReq{kind: kindProduct, method: http.MethodGet, path: fmt.Sprintf("/api/products/%d", productIDs[2*i+1])},
			workReq{kind: kindOrder, method: http.MethodPost, path: "/api/orders", body: mustJSON(shopOrders[i])},
			workReq{kind: kindReview, method: http.MethodPost, path: fmt.Sprintf("/api/products/%d/reviews", shopReviews[i].productID), body: mustJSON(shopReviews[i].Review)},
		)
	}
	w.desc = "workload=shop: a 20-request cycle, 40% GET /api/products/{id}, 20% GET /api/products?q=<text>&sort=&page=, " +
		"20% POST /api/orders (~1 KB JSON), 20% POST /api/products/{id}/reviews"
	return w
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

type search struct {
	q, sort string
	page    int
}

func (s search) path() string {
	v := url.Values{"q": {s.q}, "sort": {s.sort}, "page": {fmt.Sprint(s.page)}}
	return "/api/products?" + v.Encode()
}

// The free text of the workload is ordinary shop prose: apostrophes,
// accents, ampersands, slashes, numbers with units. Every text passes the
// CRS at paranoia level 1 both the conventional way (bench/corazaproxy)
// and through apiguard; TestShopWorkloadPasses checks it.
var shopSearches = []search{
	{"men's waterproof hiking boots size 44", "relevance", 1},
	{"café au lait mugs & saucers (set of 4)", "price_asc", 2},
	{"O'Neill wetsuit 5/4mm hooded", "rating", 1},
	{"Tolkien's The Hobbit hardback, illustrated edition", "newest", 3},
}

// Order is the POST /api/orders body. About half of its values are typed
// by shopSpec (ids, integers, enums, uuid, date, date-time, email,
// patterns), the rest is free text.
type Order struct {
	OrderID   string        `json:"order_id"`   // uuid
	CreatedAt string        `json:"created_at"` // date-time
	Channel   string        `json:"channel"`    // enum
	Currency  string        `json:"currency"`   // enum
	Customer  OrderCustomer `json:"customer"`
	Items     []OrderItem   `json:"items"`
	Shipping  OrderShipping `json:"shipping"`
	Payment   OrderPayment  `json:"payment"`
	Gift      OrderGift     `json:"gift"`
}

type OrderCustomer struct {
	ID    int    `json:"id"`
	Email string `json:"email"` // email
	Name  string `json:"name"`  // free text
}

type OrderItem struct {
	ProductID       int    `json:"product_id"`
	Name            string `json:"name"` // free text: the product's title when ordered
	Quantity        int    `json:"quantity"`
	Personalization string `json:"personalization"` // free text
}

type OrderShipping struct {
	Method       string       `json:"method"`    // enum
	Recipient    string       `json:"recipient"` // free text
	Address      OrderAddress `json:"address"`
	DeliveryDate string       `json:"delivery_date"` // date
	Instructions string       `json:"instructions"`  // free text
}

type OrderAddress struct {
	Line1      string `json:"line1"`       // free text
	Line2      string `json:"line2"`       // free text
	City       string `json:"city"`        // free text
	Region     string `json:"region"`      // free text
	PostalCode string `json:"postal_code"` // pattern
	Country    string `json:"country"`     // enum
}

type OrderPayment struct {
	Method string `json:"method"` // enum
	Token  string `json:"token"`  // pattern
	Coupon string `json:"coupon"` // free text (codes are whatever marketing typed)
}

type OrderGift struct {
	Wrap bool   `json:"wrap"`
	Note string `json:"note"` // free text
}

var shopOrders = []Order{
	{
		OrderID: "3f0c6a52-9d1e-4b7a-8c2f-5e6d7a8b9c01", CreatedAt: "2026-11-20T09:14:05Z", Channel: "ios", Currency: "EUR",
		Customer: OrderCustomer{ID: 582731, Email: "siobhan.oconnor@example.ie", Name: "Siobhán O'Connor"},
		Items: []OrderItem{
			{ProductID: 1001, Name: "Men's Trailblazer GTX hiking boot, black", Quantity: 1, Personalization: "none"},
			{ProductID: 48213, Name: "Café mug, 350 ml, white", Quantity: 4, Personalization: "Happy 40th, Dad! Love from all of us"},
		},
		Shipping: OrderShipping{Method: "express", Recipient: "Mary-Kate O'Brien",
			Address:      OrderAddress{Line1: "14 St. Stephen's Green", Line2: "Apartment 3, second floor", City: "Dublin", Region: "Co. Dublin", PostalCode: "D02 XY45", Country: "IE"},
			DeliveryDate: "2026-11-24",
			Instructions: "If nobody answers, leave it with the neighbours at number 16; the doorbell doesn't work, so knock loudly."},
		Payment: OrderPayment{Method: "card", Token: "tok_9fK2mXq8LpZ4vR7sT1wY3bN6", Coupon: "WELCOME10"},
		Gift:    OrderGift{Wrap: true, Note: "Happy birthday, Dad! We couldn't decide between the boots and the mugs, so you're getting both. Lots of love, Siobhán & Tom"},
	},
	{
		OrderID: "a81d44b0-2c3e-4f5a-9b6c-7d8e9f0a1b2c", CreatedAt: "2026-11-20T12:40:51Z", Channel: "web", Currency: "EUR",
		Customer: OrderCustomer{ID: 1204, Email: "j.dubois@example.fr", Name: "Jean-Luc Dubois"},
		Items: []OrderItem{
			{ProductID: 23, Name: "O'Neill Hyperfreak 5/4mm hooded wetsuit", Quantity: 1, Personalization: "no engraving"},
			{ProductID: 7, Name: "Neoprene gloves 3mm (pair)", Quantity: 2, Personalization: "initials J.-L. D. on the cuff"},
		},
		Shipping: OrderShipping{Method: "standard", Recipient: "Jean-Luc Dubois",
			Address:      OrderAddress{Line1: "27 rue de l'Église", Line2: "Bâtiment B, escalier 2, 4e étage", City: "Saint-Malo", Region: "Ille-et-Vilaine, Bretagne", PostalCode: "35400", Country: "FR"},
			DeliveryDate: "2026-11-27",
			Instructions: "Code de la porte : 4821. If I'm not home, the caretaker (Mme Lefèvre) can sign for it, 9am to 6pm. Merci !"},
		Payment: OrderPayment{Method: "paypal", Token: "tok_Ab3dE5gH7jK9mN1pQ3sT5vW7", Coupon: "SURF-AUTUMN"},
		Gift:    OrderGift{Wrap: false, Note: "A little something for the surfing season. Keep the receipt in case it's too tight across the shoulders. See you at Christmas!"},
	},
	{
		OrderID: "5b2e9c17-6a4d-4e8f-b1a3-c5d7e9f1a3b5", CreatedAt: "2026-11-21T18:02:33Z", Channel: "android", Currency: "GBP",
		Customer: OrderCustomer{ID: 77310, Email: "kenji.tanaka@example.jp", Name: "Kenji Tanaka (田中健二)"},
		Items: []OrderItem{
			{ProductID: 310, Name: "The Hobbit, illustrated hardback", Quantity: 1, Personalization: "Bookplate: From the library of K. Tanaka"},
			{ProductID: 1542, Name: "Reading lamp with dimmer, brass", Quantity: 1, Personalization: "none"},
		},
		Shipping: OrderShipping{Method: "express", Recipient: "Kenji Tanaka",
			Address:      OrderAddress{Line1: "Flat 2, 11 Queen's Road", Line2: "c/o Hartley & Sons Ltd.", City: "Cambridge", Region: "Cambridgeshire", PostalCode: "CB3 9AN", Country: "GB"},
			DeliveryDate: "2026-11-25",
			Instructions: "Reception is open until 5:30pm; please ask for Kenji at the front desk. Parking is through the gate on the left."},
		Payment: OrderPayment{Method: "card", Token: "tok_Zx8Cv6Bn4Ml2Kj0Hg9Fd7Sa5", Coupon: "none"},
		Gift:    OrderGift{Wrap: true, Note: "For Hana: your favourite story, with Tolkien's own drawings, and a lamp so you don't ruin your eyes. Happy 12th birthday! Grandpa"},
	},
	{
		OrderID: "c4d5e6f7-0819-4a2b-8c3d-4e5f60718293", CreatedAt: "2026-11-22T07:55:19Z", Channel: "web", Currency: "EUR",
		Customer: OrderCustomer{ID: 3390012, Email: "anna.kowalska@example.de", Name: "Anna Kowalska-Müller"},
		Items: []OrderItem{
			{ProductID: 86, Name: "Sencha green tea, 150 g tin", Quantity: 3, Personalization: "none"},
			{ProductID: 99999, Name: "Stovetop kettle 1.7 l, steel", Quantity: 1, Personalization: "Für Oma, mit Liebe"},
		},
		Shipping: OrderShipping{Method: "pickup", Recipient: "Anna Kowalska-Müller",
			Address:      OrderAddress{Line1: "Packstation 112", Line2: "Customer no. 40711 (Anna K.-M.)", City: "München", Region: "Bayern", PostalCode: "80331", Country: "DE"},
			DeliveryDate: "2026-11-26",
			Instructions: "Pick-up at the locker; I'll collect it on Wednesday evening. Please send the collection code by e-mail, not by text."},
		Payment: OrderPayment{Method: "invoice", Token: "tok_Qw1Er2Ty3Ui4Op5As6Df7Gh8", Coupon: "OMA-2026"},
		Gift:    OrderGift{Wrap: true, Note: "Liebe Oma, here's the green tea you liked and a kettle that switches itself off (no more whistling!). Alles Liebe, Anna, Piotr & the kids"},
	},
}

// Review is the POST /api/products/{id}/reviews body.
type Review struct {
	Rating   int    `json:"rating"`            // integer 1..5
	Title    string `json:"title"`             // free text
	Body     string `json:"body"`              // free text, a few hundred bytes
	Author   string `json:"author"`            // free text
	Verified bool   `json:"verified_purchase"` // boolean
	OrderID  string `json:"order_id"`          // uuid
	Locale   string `json:"locale"`            // enum
}

var shopReviews = []struct {
	productID int
	Review
}{
	{1001, Review{Rating: 5, Title: "Best boots I've owned in years",
		Body: "I've worn these on three long weekends in the Mournes and my feet stayed dry through bogs, streams and a whole day of rain. " +
			"They needed about a week of breaking in, and the laces are a bit short, but the grip on wet rock is excellent and they're lighter than they look. " +
			"I'd buy them again without a second thought.",
		Author: "Siobhán O'C.", Verified: true, OrderID: "3f0c6a52-9d1e-4b7a-8c2f-5e6d7a8b9c01", Locale: "en-GB"}},
	{23, Review{Rating: 4, Title: "Warm, flexible, runs a little small",
		Body: "Great wetsuit for Brittany in October: 5/4mm is plenty and the hood doesn't let water in. " +
			"The sizing chart says M for my height, but I had to exchange it for an L because it was too tight across the chest. " +
			"The exchange was quick and free, which I appreciated. Knee pads look like they'll last a few seasons.",
		Author: "Jean-Luc", Verified: true, OrderID: "a81d44b0-2c3e-4f5a-9b6c-7d8e9f0a1b2c", Locale: "fr-FR"}},
	{310, Review{Rating: 5, Title: "A beautiful edition of a classic",
		Body: "Bought this for my granddaughter's birthday. The paper is heavy, the binding is sewn rather than glued, and Tolkien's own illustrations are reproduced in colour. " +
			"It's a lovely object to hold and read aloud from. " +
			"Only small complaint: the dust jacket tears easily, so keep it away from little hands.",
		Author: "Kenji T.", Verified: true, OrderID: "5b2e9c17-6a4d-4e8f-b1a3-c5d7e9f1a3b5", Locale: "en-GB"}},
	{86, Review{Rating: 3, Title: "Nice tea, shame about the packaging",
		Body: "The sencha itself is fresh and grassy, exactly as described, and good value at this price. " +
			"However, one of the three tins arrived dented and the lid doesn't close properly any more, so I've moved the leaves into a jar. " +
			"Customer service offered a partial refund straight away, which was kind of them.",
		Author: "Anna K.-M.", Verified: false, OrderID: "c4d5e6f7-0819-4a2b-8c3d-4e5f60718293", Locale: "de-DE"}},
}

// shopSpec is the OpenAPI 3.1 description of the shop workload (and of
// the single workload's /api/items/{id}), enforced by the openapi-waf
// profile with undeclared: block and additional_properties: reject.
// Responses are declared without content, so their bodies are not checked.
const shopSpec = `openapi: 3.1.0
info: {title: apiguard bench shop, version: 1.0.0}
paths:
  /api/products:
    get:
      operationId: searchProducts
      parameters:
        - {name: q, in: query, required: true, schema: {type: string, minLength: 1, maxLength: 200}}
        - {name: sort, in: query, schema: {type: string, enum: [relevance, price_asc, price_desc, newest, rating]}}
        - {name: page, in: query, schema: {type: integer, minimum: 1, maximum: 500}}
      responses:
        "200": {description: a page of products}
  /api/products/{id}:
    get:
      operationId: getProduct
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
      responses:
        "200": {description: the product}
  /api/products/{id}/reviews:
    post:
      operationId: createReview
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Review"}
      responses:
        "200": {description: the review}
        "201": {description: the review}
  /api/orders:
    post:
      operationId: createOrder
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Order"}
      responses:
        "200": {description: the order}
        "201": {description: the order}
  /api/items/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: integer, minimum: 1}}
    get:
      operationId: getItem
      responses:
        "200": {description: the item}
    post:
      operationId: updateItem
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Item"}
      responses:
        "200": {description: the item}
components:
  schemas:
    Currency: {type: string, enum: [EUR, USD, GBP]}
    Order:
      type: object
      required: [order_id, created_at, customer, items, shipping, payment]
      properties:
        order_id: {type: string, format: uuid}
        created_at: {type: string, format: date-time}
        channel: {type: string, enum: [web, ios, android]}
        currency: {$ref: "#/components/schemas/Currency"}
        customer:
          type: object
          required: [id, email, name]
          properties:
            id: {type: integer, minimum: 1}
            email: {type: string, format: email}
            name: {type: string, minLength: 1, maxLength: 100}
        items:
          type: array
          minItems: 1
          maxItems: 50
          items:
            type: object
            required: [product_id, quantity]
            properties:
              product_id: {type: integer, minimum: 1}
              name: {type: string, maxLength: 200}
              quantity: {type: integer, minimum: 1, maximum: 100}
              personalization: {type: string, maxLength: 200}
        shipping:
          type: object
          required: [method, address]
          properties:
            method: {type: string, enum: [standard, express, pickup]}
            recipient: {type: string, maxLength: 100}
            address:
              type: object
              required: [line1, city, postal_code, country]
              properties:
                line1: {type: string, maxLength: 200}
                line2: {type: string, maxLength: 200}
                city: {type: string, maxLength: 100}
                region: {type: string, maxLength: 100}
                postal_code: {type: string, pattern: "^[A-Z0-9][A-Z0-9 -]{2,9}$"}
                country: {type: string, enum: [DE, FR, GB, IE, JP, US]}
            delivery_date: {type: string, format: date}
            instructions: {type: string, maxLength: 500}
        payment:
          type: object
          required: [method]
          properties:
            method: {type: string, enum: [card, paypal, invoice]}
            token: {type: string, pattern: "^tok_[A-Za-z0-9]{24}$"}
            coupon: {type: string, maxLength: 40}
        gift:
          type: object
          properties:
            wrap: {type: boolean}
            note: {type: string, maxLength: 500}
    Review:
      type: object
      required: [rating, title, body]
      properties:
        rating: {type: integer, minimum: 1, maximum: 5}
        title: {type: string, minLength: 1, maxLength: 120}
        body: {type: string, minLength: 1, maxLength: 5000}
        author: {type: string, maxLength: 80}
        verified_purchase: {type: boolean}
        order_id: {type: string, format: uuid}
        locale: {type: string, enum: [de-DE, en-GB, en-US, fr-FR, ja-JP]}
    Item:
      type: object
      properties:
        id: {type: integer}
        name: {type: string}
        price: {type: integer}
        currency: {$ref: "#/components/schemas/Currency"}
        in_stock: {type: boolean}
        tags: {type: array, items: {type: string}}
        description: {type: string}
`
