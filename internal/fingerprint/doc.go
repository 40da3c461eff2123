// Package fingerprint computes client signals for bot detection on the
// request path: the JA4 TLS fingerprint, the JA4H HTTP fingerprint, the
// Akamai HTTP/2 fingerprint, a parsed User-Agent, and a verdict on whether
// the User-Agent's claim fits the TLS stack the client really used.
//
// Wiring, once per server:
//
//	srv := &http.Server{Handler: h, TLSConfig: cfg}
//	if err := fingerprint.Install(srv); err != nil { ... } // ConnContext + WrapTLSConfig + EnableHTTP2
//	srv.ListenAndServeTLS("", "")
//
// and per request:
//
//	ci := fingerprint.FromContext(r.Context())
//	fp := ci.TLS()                 // JA4, JA4R, Family; nil without TLS
//	h2 := ci.HTTP2()               // Akamai string; nil unless HTTP/2
//	ja4h, exact := fingerprint.JA4H(r)
//	v := fingerprint.Consistency(fingerprint.ParseUserAgent(r.UserAgent()), ci)
//
// The TLS and HTTP/2 work happens once per connection (a few microseconds);
// the per-request cost is JA4H (about 2 µs, one allocation) and the
// User-Agent parse.
//
// # JA4 (exact, with the limits of crypto/tls)
//
// JA4 follows FoxIO's specification (technical_details/JA4.md) and is
// computed from the *tls.ClientHelloInfo crypto/tls hands to
// GetConfigForClient. ClientHelloInfo lists cipher suites, extensions
// (Go 1.24+, in wire order) and supported versions exactly as sent,
// GREASE values included; the package removes GREASE itself. Checked
// against FoxIO's published values and against an independent parse of
// real clients' recorded ClientHello bytes (testdata/, recorded with
// testdata/capture). What ClientHelloInfo cannot give, and what is done
// instead:
//
//   - The legacy client_version is not exposed. When the hello has no
//     supported_versions extension, crypto/tls synthesises SupportedVersions
//     from it and the highest entry is used: right for TLS 1.0 to 1.2, but
//     an SSL 3.0 hello would read "00" instead of "s3", and a legacy
//     version above TLS 1.3 reads "13" instead of "00".
//   - Only hellos crypto/tls accepts reach the hook: malformed hellos,
//     SSLv2-compatible ones and hellos with duplicate extensions fail the
//     handshake before any fingerprint exists.
//   - "q" (QUIC) is reported only when quic_transport_parameters is present;
//     DTLS ("d") never occurs over net/http.
//   - With Encrypted Client Hello keys configured, crypto/tls passes the
//     decrypted inner hello, so JA4 describes that one, not the outer hello
//     an on-path observer sees. After a HelloRetryRequest the first hello is
//     the one fingerprinted.
//   - GREASE is also removed from the signature algorithms, as the spec says
//     ("ignore GREASE values anywhere"); FoxIO's reference code does not,
//     but no known client sends GREASE signature algorithms.
//
// # JA4H (parts a, c, d exact; part b exact only for captured HTTP/2)
//
// JA4H is method, version, cookie and referer flags, header count (Cookie
// and Referer excluded), the first Accept-Language tag, then hashes of the
// header names in the order sent, of the sorted cookie names and of the
// sorted cookie name=value pairs. net/http keeps headers in a map, so the
// order and case of the names are lost. They are recovered only for HTTP/2
// requests whose HEADERS block is inside the connection's HTTP/2 capture
// (the first 16 KiB the client sends, which holds the first several
// requests of a browser connection).
// Otherwise part b is computed from the names net/http kept, sorted:
// canonical case with Host (and Transfer-Encoding, which net/http also
// removes) first for HTTP/1, lower case for HTTP/2. Such a part b is
// stable per client but does not match JA4H values computed from packet
// captures; JA4H's second result says which one you got. Pseudo-headers
// are not counted (FoxIO's python reference; its rust tool counts them).
// Cookies are sorted by name, then by the whole pair. Method and language
// characters outside [a-z0-9*] are dropped so a client cannot forge the
// '_' separators. JA4HRaw contains cookie values: never log it.
//
// # HTTP/2 (Akamai format)
//
// SETTINGS|WINDOW_UPDATE|PRIORITY|pseudo-header order, e.g.
// 1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p. It needs EnableHTTP2
// (or Install), which serves HTTP/2 through golang.org/x/net/http2 with a
// net.Conn wrapper teeing the client's first 16 KiB of plaintext: net/http's
// built-in HTTP/2 server reads the *tls.Conn itself and offers no hook.
// The tee never blocks or alters the stream; frames are parsed lazily on
// first use, and at the latest when the window is full, after which the
// raw bytes are released. The priority carried inside a HEADERS frame is
// not part of the format and is ignored.
//
// # Stack family and consistency
//
// Family is a heuristic over each stack's defaults (GREASE and ALPS for
// Chromium, record_size_limit with delegated_credentials for Firefox,
// TLS 1.3 suites listed last for Go, OpenSSL's suite order and
// encrypt_then_mac for OpenSSL clients such as curl, python and node).
// Consistency flags a browser User-Agent over a library stack with high
// confidence; it cannot see through clients that copy a browser's hello
// (uTLS, curl-impersonate) or through automated real browsers.
//
// # Licensing
//
// JA4 is BSD-3-Clause. JA4H and the other JA4+ methods are under the FoxIO
// License 1.1, which restricts monetised use; see github.com/FoxIO-LLC/ja4.
package fingerprint
