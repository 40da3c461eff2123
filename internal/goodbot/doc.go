// Package goodbot verifies that a request whose User-Agent claims to be a
// known crawler (Googlebot, Bingbot, Applebot, ...) really comes from that
// crawler's operator, so the gateway can exempt genuine crawlers from bot
// and rate-limit checks without exempting everyone who copies their
// User-Agent, which is among the most common disguises of scrapers.
//
// Verification is forward-confirmed reverse DNS (FCrDNS), the method the
// search engines document: the PTR name of the client address must lie in
// one of the bot's domains, and that name must resolve forward to the
// client address again. The forward step is what makes it trustworthy:
// anyone who controls the reverse zone of their own addresses can publish
// a PTR of crawl-1-2-3-4.googlebot.com, but only Google can make that name
// resolve to their address.
//
// DNS is slow and attacker-triggerable, so results are cached per address
// and bot (verified results for long, failures for less, inconclusive DNS
// errors briefly), concurrent checks of one address share a single lookup,
// the number of lookups in flight is capped, and a request waits at most
// the configured timeout. A Verifier never returns an error: when DNS
// cannot answer, the Result says so (ReasonDNSError, ReasonTimeout,
// ReasonBusy) and the caller treats the client as unverified, not as an
// impostor.
package goodbot
