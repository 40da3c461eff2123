package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Store is a Sink that keeps events for querying.
type Store interface {
	Sink
	// Query returns matching events, newest first by ID, which follows
	// insertion order; ordering by ID is what makes BeforeID paging exact.
	Query(ctx context.Context, f Filter) ([]Event, error)
	// Count counts matching events; Limit is ignored, BeforeID is not.
	Count(ctx context.Context, f Filter) (int64, error)
	// Prune deletes events whose Time is before before and says how many.
	Prune(ctx context.Context, before time.Time) (int64, error)
	// Rates counts matching events per route, client address and time
	// bucket of the given width, aggregated in the database; request events
	// kept as rollups count too.
	Rates(ctx context.Context, f Filter, window time.Duration) ([]RateBucket, error)
	// WriteRollups stores aggregated request counts.
	WriteRollups(ctx context.Context, rows []Rollup) error
	Close() error
}

// RateBucket is one client's event count on one route in one time bucket.
type RateBucket struct {
	Route    string
	ClientIP string
	Start    time.Time
	Count    int64
}

// Filter selects events. Zero fields match everything.
type Filter struct {
	Since, Until                                      time.Time // Since inclusive, Until exclusive; zero = unbounded
	Kinds                                             []Kind
	Route, ClientIP, Check, Action, Reason, RequestID string // "" = any
	NotAction                                         string // exclude this action ("" = none)
	Limit                                             int    // default 100, max 10000
	// BeforeID pages backwards: only events with ID < BeforeID (0 = none).
	// Pass the last ID of one page to get the next.
	BeforeID int64
}

const (
	defaultQueryLimit = 100
	maxQueryLimit     = 10000
)

func (f Filter) limit() int {
	switch {
	case f.Limit <= 0:
		return defaultQueryLimit
	case f.Limit > maxQueryLimit:
		return maxQueryLimit
	}
	return f.Limit
}

// The schema is the same in SQLite and PostgreSQL. Time is stored as unix
// nanoseconds in a BIGINT rather than timestamptz: it round-trips Go's
// nanosecond precision (timestamptz keeps microseconds), compares the same
// way in both databases, and needs no time-zone handling. A zero Time is
// stored as 0. Strings are NOT NULL, empty when absent, so filters are
// plain equality; attrs is a JSON object, NULL when empty. The verdict check
// is check_name because CHECK is an SQL keyword.
const eventColumns = "time_ns, kind, request_id, route, method, host, path, status, " +
	"client_ip, subject, api_key, app, device, ja4, check_name, action, reason, score, detail, " +
	"latency_ns, upstream_ns, check_latency_ns, attrs"

var eventColumnList = strings.Split(strings.ReplaceAll(eventColumns, " ", ""), ",")

// columnDefs are the non-id columns, shared by both dialects' first migration.
const columnDefs = `
	time_ns          BIGINT  NOT NULL,
	kind             TEXT    NOT NULL,
	request_id       TEXT    NOT NULL DEFAULT '',
	route            TEXT    NOT NULL DEFAULT '',
	method           TEXT    NOT NULL DEFAULT '',
	host             TEXT    NOT NULL DEFAULT '',
	path             TEXT    NOT NULL DEFAULT '',
	status           INTEGER NOT NULL DEFAULT 0,
	client_ip        TEXT    NOT NULL DEFAULT '',
	subject          TEXT    NOT NULL DEFAULT '',
	api_key          TEXT    NOT NULL DEFAULT '',
	app              TEXT    NOT NULL DEFAULT '',
	device           TEXT    NOT NULL DEFAULT '',
	ja4              TEXT    NOT NULL DEFAULT '',
	check_name       TEXT    NOT NULL DEFAULT '',
	action           TEXT    NOT NULL DEFAULT '',
	reason           TEXT    NOT NULL DEFAULT '',
	score            INTEGER NOT NULL DEFAULT 0,
	detail           TEXT    NOT NULL DEFAULT '',
	latency_ns       BIGINT  NOT NULL DEFAULT 0,
	upstream_ns      BIGINT  NOT NULL DEFAULT 0,
	check_latency_ns BIGINT  NOT NULL DEFAULT 0,
	attrs            TEXT`

var indexDefs = []string{
	`CREATE INDEX IF NOT EXISTS events_time ON events (time_ns)`,
	`CREATE INDEX IF NOT EXISTS events_kind_time ON events (kind, time_ns)`,
	`CREATE INDEX IF NOT EXISTS events_route_time ON events (route, time_ns)`,
	`CREATE INDEX IF NOT EXISTS events_client_ip_time ON events (client_ip, time_ns)`,
	`CREATE INDEX IF NOT EXISTS events_reason_time ON events (reason, time_ns)`,
	`CREATE INDEX IF NOT EXISTS events_request_id ON events (request_id)`,
}

// migration is one schema step. Versions only grow; a released migration is
// never edited, a change is a new one. Statements use IF NOT EXISTS so that a
// half-recorded run can be repeated.
type migration struct {
	version int
	name    string
	stmts   []string
}

func migrations(idColumn string) []migration {
	return []migration{{
		version: 1,
		name:    "create events",
		stmts: append([]string{
			"CREATE TABLE IF NOT EXISTS events (\n\tid " + idColumn + "," + columnDefs + "\n)",
		}, indexDefs...),
	}, {
		version: 2,
		name:    "create request_rollups",
		stmts: []string{
			`CREATE TABLE IF NOT EXISTS request_rollups (
	bucket_ns      BIGINT  NOT NULL,
	route          TEXT    NOT NULL DEFAULT '',
	client_ip      TEXT    NOT NULL DEFAULT '',
	method         TEXT    NOT NULL DEFAULT '',
	status         INTEGER NOT NULL DEFAULT 0,
	action         TEXT    NOT NULL DEFAULT '',
	count          BIGINT  NOT NULL,
	latency_sum_ns BIGINT  NOT NULL DEFAULT 0,
	latency_max_ns BIGINT  NOT NULL DEFAULT 0
)`,
			`CREATE INDEX IF NOT EXISTS request_rollups_bucket ON request_rollups (bucket_ns)`,
			`CREATE INDEX IF NOT EXISTS request_rollups_route_bucket ON request_rollups (route, bucket_ns)`,
			`CREATE INDEX IF NOT EXISTS request_rollups_client_bucket ON request_rollups (client_ip, bucket_ns)`,
		},
	}}
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT   NOT NULL,
	applied_ns BIGINT NOT NULL
)`

// placeholder renders the n'th (1-based) bind parameter of a dialect.
type placeholder func(n int) string

func questionMark(int) string { return "?" }
func dollar(n int) string     { return "$" + strconv.Itoa(n) }
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// where builds the WHERE clause of f, starting bind parameters at 1.
func (f Filter) where(ph placeholder) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.Replace(cond, "?", ph(len(args)), 1))
	}
	if !f.Since.IsZero() {
		add("time_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("time_ns < ?", f.Until.UnixNano())
	}
	if len(f.Kinds) > 0 {
		in := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			args = append(args, string(k))
			in[i] = ph(len(args))
		}
		conds = append(conds, "kind IN ("+strings.Join(in, ", ")+")")
	}
	for _, c := range []struct{ col, v string }{
		{"route", f.Route}, {"client_ip", f.ClientIP}, {"check_name", f.Check},
		{"action", f.Action}, {"reason", f.Reason}, {"request_id", f.RequestID},
	} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if f.NotAction != "" {
		add("action <> ?", f.NotAction)
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// querySQL orders by id rather than time_ns because id is what BeforeID
// pages over; ordering by anything else would let pages overlap or skip.
func (f Filter) querySQL(ph placeholder) (string, []any) {
	w, args := f.where(ph)
	args = append(args, f.limit())
	return "SELECT id, " + eventColumns + " FROM events" + w +
		" ORDER BY id DESC LIMIT " + ph(len(args)), args
}

func (f Filter) ratesSQL(ph placeholder, window time.Duration) (string, []any) {
	w, args := f.where(ph)
	// The window is our own integer, so it is written into the SQL: a bind
	// parameter before the WHERE clause's would break positional "?".
	win := strconv.FormatInt(int64(window), 10)
	q := "SELECT route, client_ip, time_ns / " + win + " AS bucket, count(*) AS n FROM events" + w + " GROUP BY route, client_ip, bucket"
	if f.wantsRequests() {
		rw, rargs := f.rollupWhere(ph, len(args))
		args = append(args, rargs...)
		q = "SELECT route, client_ip, bucket, sum(n) FROM (" + q +
			" UNION ALL SELECT route, client_ip, bucket_ns / " + win + " AS bucket, sum(count) AS n FROM request_rollups" + rw +
			" GROUP BY route, client_ip, bucket) AS u GROUP BY route, client_ip, bucket"
	}
	return q, args
}

// wantsRequests reports whether request events (and so rollups) match f.
func (f Filter) wantsRequests() bool {
	if len(f.Kinds) == 0 {
		return f.Check == "" && f.Reason == "" && f.RequestID == ""
	}
	for _, k := range f.Kinds {
		if k == KindRequest {
			return f.Check == "" && f.Reason == "" && f.RequestID == ""
		}
	}
	return false
}

// rollupWhere is where() for the rollup table (its columns are a subset),
// numbering bind parameters after the first n.
func (f Filter) rollupWhere(ph placeholder, n int) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, strings.Replace(cond, "?", ph(n+len(args)), 1))
	}
	if !f.Since.IsZero() {
		add("bucket_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("bucket_ns < ?", f.Until.UnixNano())
	}
	for _, c := range []struct{ col, v string }{{"route", f.Route}, {"client_ip", f.ClientIP}, {"action", f.Action}} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if f.NotAction != "" {
		add("action <> ?", f.NotAction)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

func (f Filter) countSQL(ph placeholder) (string, []any) {
	w, args := f.where(ph)
	return "SELECT count(*) FROM events" + w, args
}

// eventArgs are e's column values in eventColumns order.
func eventArgs(e *Event) ([]any, error) {
	attrs, err := encodeAttrs(e.Attrs)
	if err != nil {
		return nil, err
	}
	return []any{
		unixNano(e.Time), string(e.Kind), e.RequestID, e.Route, e.Method, e.Host, e.Path, int64(e.Status),
		e.ClientIP, e.Subject, e.APIKey, e.App, e.Device, e.JA4, e.Check, e.Action, e.Reason, int64(e.Score), e.Detail,
		int64(e.Latency), int64(e.Upstream), int64(e.CheckLatency), attrs,
	}, nil
}

func encodeAttrs(m map[string]string) (*string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode attrs: %w", err)
	}
	s := string(b)
	return &s, nil
}

// scanEvent reads one row of "id, eventColumns" through scan, which is
// Rows.Scan of database/sql or pgx.
func scanEvent(scan func(dest ...any) error) (Event, error) {
	var (
		e                               Event
		timeNs, status, score           int64
		latency, upstream, checkLatency int64
		kind                            string
		attrs                           *string
	)
	err := scan(&e.ID, &timeNs, &kind, &e.RequestID, &e.Route, &e.Method, &e.Host, &e.Path, &status,
		&e.ClientIP, &e.Subject, &e.APIKey, &e.App, &e.Device, &e.JA4, &e.Check, &e.Action, &e.Reason, &score, &e.Detail,
		&latency, &upstream, &checkLatency, &attrs)
	if err != nil {
		return Event{}, err
	}
	if timeNs != 0 {
		e.Time = time.Unix(0, timeNs).UTC()
	}
	e.Kind = Kind(kind)
	e.Status, e.Score = int(status), int(score)
	e.Latency, e.Upstream, e.CheckLatency = time.Duration(latency), time.Duration(upstream), time.Duration(checkLatency)
	if attrs != nil && *attrs != "" {
		if err := json.Unmarshal([]byte(*attrs), &e.Attrs); err != nil {
			return Event{}, fmt.Errorf("decode attrs of event %d: %w", e.ID, err)
		}
	}
	return e, nil
}

// defaultPruneChunk bounds one DELETE so that pruning a large backlog does not hold
// the write lock long enough to stall the sink's inserts.
const defaultPruneChunk = 5000

// StartRetention starts a goroutine that deletes events older than keep,
// once at start and then every every (default 1h), until ctx is done. keep
// <= 0 disables it.
func StartRetention(ctx context.Context, s Store, keep, every time.Duration, log *slog.Logger) {
	if keep <= 0 {
		return
	}
	if every <= 0 {
		every = time.Hour
	}
	if log == nil {
		log = slog.Default()
	}
	prune := func() {
		pctx, cancel := context.WithTimeout(ctx, every)
		defer cancel()
		before := time.Now().Add(-keep)
		n, err := s.Prune(pctx, before)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("events: retention prune failed", "store", s.Name(), "err", err)
		case n > 0:
			log.Info("events: retention pruned", "store", s.Name(), "deleted", n, "before", before)
		}
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		prune()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				prune()
			}
		}
	}()
}

// rows is what database/sql and pgx result sets have in common.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

func collectEvents(r rows) ([]Event, error) {
	var out []Event
	for r.Next() {
		e, err := scanEvent(r.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, r.Err()
}

func collectRates(r rows, window time.Duration) ([]RateBucket, error) {
	var out []RateBucket
	for r.Next() {
		var b RateBucket
		var bucket int64
		if err := r.Scan(&b.Route, &b.ClientIP, &bucket, &b.Count); err != nil {
			return nil, err
		}
		b.Start = time.Unix(0, bucket*int64(window))
		out = append(out, b)
	}
	return out, r.Err()
}

const rollupColumns = "bucket_ns, route, client_ip, method, status, action, count, latency_sum_ns, latency_max_ns"

var rollupColumnList = strings.Split(strings.ReplaceAll(rollupColumns, " ", ""), ",")

func rollupArgs(r *Rollup) []any {
	return []any{r.Start.UnixNano(), r.Route, r.ClientIP, r.Method, int64(r.Status), r.Action, r.Count, int64(r.LatencySum), int64(r.LatencyMax)}
}
