package fingerprint

import (
	"testing"
)

// Run with: go test -run '^$' -bench . -benchmem ./internal/fingerprint/

func BenchmarkJA4(b *testing.B) {
	chi := mustReplay(b, readTestdata(b, "chromium.hello"))
	b.ReportAllocs()
	for b.Loop() {
		_ = JA4(chi)
	}
}

// BenchmarkNewTLSFingerprint is the per-connection cost WrapTLSConfig adds
// to a handshake: JA4, its raw form and the stack family.
func BenchmarkNewTLSFingerprint(b *testing.B) {
	chi := mustReplay(b, readTestdata(b, "chromium.hello"))
	b.ReportAllocs()
	for b.Loop() {
		_ = NewTLSFingerprint(chi)
	}
}

const browserRequest = "GET /api/items?page=2 HTTP/1.1\r\n" +
	"Host: shop.example\r\n" +
	"Connection: keep-alive\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n" +
	"sec-ch-ua-mobile: ?0\r\n" +
	"sec-ch-ua-platform: \"Linux\"\r\n" +
	"User-Agent: " + chromeUA + "\r\n" +
	"Accept: application/json, text/plain, */*\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"Sec-Fetch-Mode: cors\r\n" +
	"Sec-Fetch-Dest: empty\r\n" +
	"Referer: https://shop.example/cart\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; cart=3; _ga=GA1.1.1234567890.1700000000; theme=dark\r\n" +
	"\r\n"

// BenchmarkJA4H is the per-request cost on a typical browser request.
func BenchmarkJA4H(b *testing.B) {
	r := readRequest(b, browserRequest)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = JA4H(r)
	}
}

func BenchmarkParseUserAgent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ParseUserAgent(chromeUA)
	}
}

func BenchmarkConsistency(b *testing.B) {
	ci := new(ConnInfo)
	ci.SetTLS(NewTLSFingerprint(mustReplay(b, readTestdata(b, "go_client.hello"))))
	ua := ParseUserAgent(chromeUA)
	b.ReportAllocs()
	for b.Loop() {
		_ = Consistency(ua, ci)
	}
}

// BenchmarkHTTP2Fingerprint is the once-per-connection parse of Chromium's
// first flight (preface, SETTINGS, WINDOW_UPDATE, HEADERS with HPACK).
func BenchmarkHTTP2Fingerprint(b *testing.B) {
	p := readTestdata(b, "chromium.plain")
	b.ReportAllocs()
	for b.Loop() {
		c := newH2Capture()
		c.write(p)
		_ = c.fingerprint()
	}
}
