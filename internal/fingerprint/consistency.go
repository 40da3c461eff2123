package fingerprint

import (
	"strings"

	"github.com/mileusna/useragent"
)

// UserAgent is a parsed User-Agent header plus the TLS stack it implies.
type UserAgent struct {
	Raw     string
	Name    string // "Chrome", "Firefox", "curl", "Go-http-client"...
	Version string
	OS      string // "Windows", "macOS", "iOS", "Android", "Linux"...
	Device  string
	Mobile  bool
	Tablet  bool
	Desktop bool
	Bot     bool // declares itself a crawler (or is Headless Chrome)
	// Browser is true when the User-Agent claims to be a web browser.
	Browser bool
	// Tool is true when it names an HTTP library or command-line client.
	Tool bool
	// Claims is the TLS stack a client with this User-Agent normally
	// uses; FamilyUnknown when the User-Agent does not tell.
	Claims Family
}

// ParseUserAgent parses s with github.com/mileusna/useragent and maps the
// result to the TLS stack it implies.
func ParseUserAgent(s string) UserAgent {
	p := useragent.Parse(s)
	ua := UserAgent{
		Raw: s, Name: p.Name, Version: p.Version, OS: p.OS, Device: p.Device,
		Mobile: p.Mobile, Tablet: p.Tablet, Desktop: p.Desktop, Bot: p.Bot,
		Claims: FamilyUnknown,
	}
	switch p.Name {
	case useragent.Chrome, useragent.HeadlessChrome, useragent.Edge, useragent.Opera,
		useragent.OperaTouch, useragent.Vivaldi, useragent.SamsungBrowser:
		ua.Browser, ua.Claims = true, FamilyChromium
	case useragent.Firefox:
		ua.Browser, ua.Claims = true, FamilyFirefox
	case useragent.Safari, useragent.MobileSafari:
		ua.Browser, ua.Claims = true, FamilySafari
	default:
		ua.Tool, ua.Claims = toolFamily(strings.ToLower(p.Name))
	}
	if ua.Browser && p.OS == useragent.IOS {
		ua.Claims = FamilySafari // every iOS browser is WebKit on Apple's network stack
	}
	return ua
}

// toolFamily maps HTTP clients that announce themselves to the TLS stack
// they use on Linux servers and most other platforms.
func toolFamily(name string) (bool, Family) {
	switch name {
	case "curl", "wget", "python-urllib", "python-requests", "python-httpx", "aiohttp",
		"node", "node-fetch", "axios", "undici", "postmanruntime", "scrapy", "libwww-perl", "php":
		return true, FamilyOpenSSL
	case "go-http-client":
		return true, FamilyGo
	case "okhttp", "java", "apache-httpclient", "powershell", "httpie", "ruby":
		return true, FamilyUnknown
	}
	return false, FamilyUnknown
}

// Verdict is the outcome of Consistency.
type Verdict struct {
	// Mismatch is true when the User-Agent and the connection disagree.
	Mismatch bool
	// Confidence in [0, 1] is how much weight the verdict deserves; 0 when
	// the signals could not be compared at all.
	Confidence float64
	// Reason is a short human explanation, safe to log.
	Reason string
}

// Consistency compares what the User-Agent claims with the TLS stack (and,
// for HTTP/2, the pseudo-header order) the connection shows. A browser
// User-Agent over a library TLS stack is the strong signal: browsers do
// not use Go's crypto/tls or stock OpenSSL, scripts that fake a browser
// User-Agent do. It cannot see through clients that imitate a browser's
// ClientHello (uTLS, curl-impersonate) or through real browsers driven by
// automation.
func Consistency(ua UserAgent, info *ConnInfo) Verdict {
	fp := info.TLS()
	if fp == nil {
		return Verdict{Reason: "no tls fingerprint for this connection"}
	}
	obs := fp.Family
	name := ua.Name
	switch {
	case ua.Browser && obs.Library():
		return Verdict{Mismatch: true, Confidence: 0.9,
			Reason: "user-agent claims " + name + " but the tls stack is " + string(obs)}
	case ua.Browser && obs.Browser() && obs != ua.Claims && !(ua.OS == useragent.IOS && obs == FamilyChromium):
		return Verdict{Mismatch: true, Confidence: 0.7,
			Reason: "user-agent claims " + name + " but the tls hello is " + string(obs) + "'s"}
	case ua.Browser:
		if v, ok := checkH2Order(ua, info.HTTP2()); ok {
			return v
		}
		if obs == FamilyUnknown {
			return Verdict{Confidence: 0.2, Reason: "user-agent claims " + name + "; tls stack not recognised"}
		}
		return Verdict{Confidence: 0.8, Reason: "user-agent and tls stack agree (" + string(obs) + ")"}
	case ua.Tool && obs.Browser():
		return Verdict{Mismatch: true, Confidence: 0.3,
			Reason: "user-agent names " + name + " but the tls hello is " + string(obs) + "'s"}
	case ua.Tool && ua.Claims != FamilyUnknown && obs == ua.Claims:
		return Verdict{Confidence: 0.8, Reason: "user-agent and tls stack agree (" + string(obs) + ")"}
	case ua.Tool:
		return Verdict{Confidence: 0.3, Reason: "user-agent names " + name + "; tls stack is " + string(obs)}
	}
	return Verdict{Reason: "user-agent makes no client claim"}
}

// checkH2Order compares the pseudo-header order with the claimed
// browser's, for the browsers whose order is stable across versions.
func checkH2Order(ua UserAgent, h2 *HTTP2Fingerprint) (Verdict, bool) {
	if h2 == nil {
		return Verdict{}, false
	}
	want := ""
	switch ua.Claims {
	case FamilyChromium:
		want = "m,a,s,p"
	case FamilyFirefox:
		want = "m,p,a,s"
	}
	if want == "" || h2.PseudoHeaderOrder == want {
		return Verdict{}, false
	}
	return Verdict{Mismatch: true, Confidence: 0.6,
		Reason: "user-agent claims " + ua.Name + " but the http/2 pseudo-header order is " + h2.PseudoHeaderOrder}, true
}
