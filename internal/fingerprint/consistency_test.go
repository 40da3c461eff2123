package fingerprint

import (
	"strings"
	"testing"
)

// connFromRecording builds the ConnInfo a server would have for a recorded
// client: its ClientHello and, when given, its first HTTP/2 bytes.
func connFromRecording(t *testing.T, hello, plain string) *ConnInfo {
	t.Helper()
	ci := new(ConnInfo)
	ci.SetTLS(NewTLSFingerprint(mustReplay(t, readTestdata(t, hello))))
	if plain != "" {
		c := newH2Capture()
		c.write(readTestdata(t, plain))
		ci.h2.Store(c)
	}
	return ci
}

// headlessUA is the User-Agent the recorded Chromium sent.
const headlessUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"

func TestConsistency(t *testing.T) {
	t.Parallel()
	const (
		firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
		iosUA     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/122.0.6261.89 Mobile/15E148 Safari/604.1"
		safariUA  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
	)
	tests := []struct {
		desc, hello, plain, ua string
		mismatch               bool
		minConf                float64
		reason                 string // substring
	}{
		{"go client claiming chrome", "go_client.hello", "", chromeUA, true, 0.9, "tls stack is go"},
		{"go client claiming chrome over h2", "go_client.hello", "go_client.plain", chromeUA, true, 0.9, "go"},
		{"curl claiming chrome", "curl.hello", "", chromeUA, true, 0.9, "openssl"},
		{"python claiming firefox", "python_urllib.hello", "", firefoxUA, true, 0.9, "openssl"},
		{"node claiming safari", "node_https.hello", "", safariUA, true, 0.9, "openssl"},
		{"chromium with chrome UA", "chromium.hello", "chromium.plain", chromeUA, false, 0.8, "agree"},
		{"chromium with its own headless UA", "chromium.hello", "chromium.plain", headlessUA, false, 0.8, "agree"},
		{"chromium claiming firefox", "chromium.hello", "", firefoxUA, true, 0.7, "chromium"},
		{"firefox with firefox UA", "firefox.hello", "", firefoxUA, false, 0.8, "agree"},
		{"firefox claiming chrome", "firefox.hello", "", chromeUA, true, 0.7, "firefox"},
		{"chromium on iOS chrome UA", "chromium.hello", "", iosUA, false, 0.8, "agree"},
		{"curl with curl UA", "curl.hello", "", "curl/7.88.1", false, 0.8, "agree"},
		{"python with urllib UA", "python_urllib.hello", "", "Python-urllib/3.11", false, 0.8, "agree"},
		{"go with go UA", "go_client.hello", "", "Go-http-client/2.0", false, 0.8, "agree"},
		{"chromium claiming curl", "chromium.hello", "", "curl/8.5.0", true, 0.3, "curl"},
		{"no user-agent", "curl.hello", "", "", false, 0, "no client claim"},
		{"crawler", "go_client.hello", "", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", false, 0, "no client claim"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			v := Consistency(ParseUserAgent(tt.ua), connFromRecording(t, tt.hello, tt.plain))
			if v.Mismatch != tt.mismatch || v.Confidence < tt.minConf || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("verdict %+v, want mismatch %v, confidence >= %.1f, reason containing %q",
					v, tt.mismatch, tt.minConf, tt.reason)
			}
		})
	}
}

// TestConsistencyHTTP2Order covers a client whose ClientHello passes for
// Chromium (an impersonating TLS library) but whose HTTP/2 layer is Go's.
func TestConsistencyHTTP2Order(t *testing.T) {
	t.Parallel()
	ci := connFromRecording(t, "chromium.hello", "go_client.plain")
	v := Consistency(ParseUserAgent(chromeUA), ci)
	if !v.Mismatch || v.Confidence < 0.6 || !strings.Contains(v.Reason, "a,m,p,s") {
		t.Errorf("verdict %+v, want a mismatch on the pseudo-header order", v)
	}
}

func TestConsistencyWithoutTLS(t *testing.T) {
	t.Parallel()
	for _, ci := range []*ConnInfo{nil, new(ConnInfo)} {
		if v := Consistency(ParseUserAgent(chromeUA), ci); v.Mismatch || v.Confidence != 0 {
			t.Errorf("verdict %+v without a TLS fingerprint", v)
		}
	}
}

func TestParseUserAgent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ua            string
		browser, tool bool
		claims        Family
	}{
		{chromeUA, true, false, FamilyChromium},
		{headlessUA, true, false, FamilyChromium},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", true, false, FamilyChromium},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/122.0 Mobile/15E148 Safari/604.1", true, false, FamilySafari},
		{"curl/8.5.0", false, true, FamilyOpenSSL},
		{"python-requests/2.31.0", false, true, FamilyOpenSSL},
		{"Go-http-client/1.1", false, true, FamilyGo},
		{"okhttp/4.12.0", false, true, FamilyUnknown},
		{"", false, false, FamilyUnknown},
	}
	for _, tt := range tests {
		ua := ParseUserAgent(tt.ua)
		if ua.Browser != tt.browser || ua.Tool != tt.tool || ua.Claims != tt.claims {
			t.Errorf("%q: browser %v tool %v claims %s, want %v %v %s", tt.ua, ua.Browser, ua.Tool, ua.Claims,
				tt.browser, tt.tool, tt.claims)
		}
	}
}
