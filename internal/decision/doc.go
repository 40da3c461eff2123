// Package decision holds the block / challenge / throttle / allow
// decisions that every gateway instance enforces: made by an operator
// (source "manual") or by an observe-path detector, each for one identity
// key, with a reason, evidence and an expiry.
//
// Decisions live in the shared state backend (Redis across instances,
// memory in one process) and in an in-memory snapshot per instance. The
// request path reads only the snapshot (Store.Match, Store.MatchIP): an
// atomic pointer load and a map lookup, never the network and never a
// lock, so a slow or unreachable Redis cannot slow a request, and it keeps
// enforcing what it knew.
//
// Instances learn of changes two ways. The change feed (Publish/Subscribe)
// brings a decision made on one instance to the others within
// milliseconds, but its delivery is at most once; so every ResyncInterval
// (default 1s) each instance also lists all decisions with Scan and
// reconciles, which bounds how long a missed message can go unnoticed.
//
// # Which decision wins
//
// A request can match several decisions (its address, its /24, its API
// key, its country). The winner is, in order:
//
//  1. an allow whose source is "manual";
//  2. else the most severe restriction: block, then challenge, then
//     throttle (from any source);
//  3. else an allow made by a detector.
//
// A manual allow is the operator's escape hatch for false positives (a
// partner's API key, a monitoring network): detectors re-add their
// decisions every window, so an allow that a restriction could outvote
// could never un-block a client. To restrict a client inside an allowed
// range, narrow or delete the allow. A detector's allow, in contrast, is
// only a hint and overrides nothing: one mistaken signal must not lift
// another detector's block. Equal ranks prefer a manual decision, then the
// one that expires last.
//
// # Keys
//
// A key is kind:value: ip:<address>, net:<cidr>, fp:<ja4>, key:<API key
// name>, sub:<subject>, dev:<device>, country:<ISO code>. ParseKey
// canonicalises them (addresses unmapped, networks masked, a host-sized
// network becomes an ip key, countries upper case). An ip key matches
// every net decision whose network contains the address.
//
// # Bounds
//
// An instance keeps at most Options.MaxDecisions decisions (default
// 100000). When it is full, Add accepts a new decision only if it outranks
// the lowest-ranked one kept (same order as above, then the one expiring
// first), which it displaces; otherwise Add fails with ErrFull, so a
// detector that floods finds out while an operator's block still gets in.
// Decisions beyond the cap that arrive from other instances or the backend
// are ranked the same way and the lowest are not kept, with a warning at
// most once a minute. The displaced decisions stay in the backend until
// they expire; List still shows them.
//
// # Cost
//
// Match and MatchIP allocate nothing. A miss costs one map probe for the
// address plus, per distinct network prefix length in use, a mask and a
// one-bit filter test; a candidate costs one clock read. A change copies
// 1/64 of the snapshot (and the affected network level), so Add is
// O(n/64); a resync lists every decision from the backend once per
// ResyncInterval.
package decision
