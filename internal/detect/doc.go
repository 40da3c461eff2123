// Package detect finds API abuse in finished requests and keeps a risk
// score per client. It runs on the gateway's asynchronous observe path,
// never on a request's hot path: the caller builds an Observation per
// request and calls Engine.Observe; whoever turns risk into decisions
// (block, throttle, challenge) calls Engine.Risk or Engine.Score.
//
// # Identity keys
//
// One observation is accounted under several keys, so a client cannot
// hide by changing one attribute: ip:<addr>, net:<addr>/24 (IPv4) or /64
// (IPv6), fp:<JA4>|<JA4H a_b_c> (see FingerprintJA4JA4H for why JA4H's
// cookie-value section is dropped), key:<api key>, sub:<subject>,
// dev:<device>. Each detector has a default set of key kinds (Common.Keys).
// Account-level findings use user:<normalized username>. Values longer
// than 128 bytes are cut and suffixed with a hash. A client's risk is the
// maximum over its keys.
//
// # Detectors and defaults
//
// Scores are contributions 0-100; ChallengeScore (50) and BlockScore (80)
// are the suggested levels. One weak signal stays under the block level,
// one strong signal reaches it, two moderate ones combine past it.
//
//	detector     rule                 fires when (defaults)                                          score
//	rate         rate_anomaly         per endpoint, warm (100 samples): count in the last 1m >= 30   40 +10/σ, max 70
//	                                  and log(1+count) > mean + 3σ of per-client counts (EWMA 0.02)
//	timing       periodic             CV of the last 20 gaps < 0.2 (no gap > 10m; API keys skipped)  30..50
//	scraping     unique_resources     GETs in 10m >= 100·actors, distinct paths/requests >= 0.8       50 +10 per multiple, max 90
//	enumeration  numeric_ids          >= 12 distinct ids (last 32, 10m) per key+template+param, and  dense 40 + failing 60, max 95
//	                                  dense (>= 70% of sorted gaps <= 2, or density >= 0.15) and/or
//	                                  >= 50% 401/403/404/410
//	enumeration  opaque_ids           >= 20 distinct non-numeric ids (same failure component)        (40 [+60]) x 0.5
//	probing      auth_errors          401+403 (not logins) >= 10·actors and >= 50% of requests, 10m  50 +10 per multiple, max 90
//	probing      not_found            404 >= 20·actors and >= 50%                                    same
//	probing      undeclared           undeclared operations >= 10·actors and >= 50%                  same
//	login        brute_force          per ip/net, 5m: failures >= 10 and >= 80% of attempts          70, 90 at 2x
//	login        stuffing             per ip/net, 5m: >= 8 usernames and >= 50% failures             90
//	login        user_failures        per username, all instances, 15m: >= 20 failures               70 (user: key)
//	login        user_many_clients    per username, all instances, 15m: failures from >= 8 IPs       80 (user: key)
//	login        distributed          per fingerprint, all instances, 15m: >= 30 failures from       90 (fp: key)
//	                                  >= 10 IPs, >= 70% of the fingerprint's attempts
//	flow         <rule name>          a configured step without its earlier steps, in order, within  per rule, default 60
//
// Why these numbers: people think for seconds between pages (log-normal,
// CV near 1), come back to the same resources, open a handful of their
// own objects, mostly get 2xx, and mistype a password once. The thresholds
// sit several times above what the genuine traffic of the tests produces
// (office NATs of 40, carrier NATs, power users clicking every 3s, machine
// clients) and are reached by the attacks of the tests within tens of
// requests; see scenario_test.go and genuine_test.go for both.
//
// Counts, not ratios, are what a NAT inflates, so volume thresholds on
// ip: and net: keys are multiplied by the number of distinct actors seen
// behind the address (NATConfig, capped at 8); ratios are not scaled. Login
// rules rely on ratios and distinct usernames only: an office where 60
// people log in has many usernames but few failures.
//
// Every rule that keeps firing for a key reports again only after
// Config.Cooldown (1m) or when its score rises by 10, so a steady attack
// produces a finding a minute, not one per request.
//
// # Risk
//
// Risk keeps, per key, the strongest finding of each (detector, rule),
// decaying with a half-life (5m), and combines them as independent
// evidence: 100·(1 − ∏(1 − sᵢ/100)). Findings of 60 and 50 make 80; none
// ever exceed 100. A noisy-OR rather than a capped sum, so that many weak
// findings approach the block level slowly instead of adding up to it.
//
// # Bounded memory
//
// Every per-key structure is in a table: a sharded map with LRU eviction
// at MaxKeys (default 100000 per table) whose idle keys expire (after the
// detector's window) as new keys arrive. Windows are four time buckets of
// fixed size (a quarter of the window each) or fixed rings; distinct
// counts are 256- or 512-bit linear-counting bitmaps. Measured heap per
// tracked key, table overhead and key included (BenchmarkMemoryPerKey,
// B/key): nat 140 B, rate 175 B, timing 255 B (20 gaps), probing 250 B,
// flows 270 B, login 390 B (with its backend counters), scraping 505 B,
// enumeration 940 B (32 ids), risk ~600 B per key with findings (plus
// their evidence maps). A client seen under
// ip, net, fp and sub by every detector costs ~6.5 KB in all. The bound is
// per table, so with every table full at the default MaxKeys (100000) the
// engine holds ~400 MB; size MaxKeys (or a detector's max_keys) to the
// memory you give it.
//
// # Shared state
//
// Counts that must agree across gateway instances (login failures per
// username and the IPs they come from; attempts, failures and failing IPs
// per fingerprint) go through a state.Backend as two tumbling buckets per
// counter, keyed <prefix>login:user:<name>:fail:<bucket> and
// <prefix>login:<fp key>:fail:<bucket> (prefix "det:"), with a TTL of two
// windows; see shared. Without Options.Backend the engine uses a private
// in-memory backend through the same code. A failed login costs up to
// seven backend round trips (plus one per counter and bucket to read the
// previous bucket once); when the backend fails, the shared rules are
// skipped and counted in Stats.BackendErrors.
//
// # Cost
//
// Observe is safe for concurrent use. With every detector on it costs
// about 2.5-3µs of CPU and one allocation (the identity keys) per
// non-login request (BenchmarkObserve); logins add the backend calls.
package detect
