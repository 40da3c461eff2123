package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// sqliteDSNParams apply to every pooled connection. WAL lets the admin API
// read while the sink writes; synchronous=NORMAL is durable across process
// crashes under WAL and much faster than FULL; busy_timeout makes a second
// writer (retention, another process) wait instead of failing; immediate
// transactions take the write lock up front so two writers never deadlock
// upgrading a read lock.
const sqliteDSNParams = "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"

type sqliteStore struct {
	db         *sql.DB
	pruneChunk int
	closeOnce  sync.Once
	closeErr   error
}

// OpenSQLite opens or creates the event database at path, creating its
// directory, and applies pending migrations.
func OpenSQLite(path string) (Store, error) {
	if path == "" {
		return nil, errors.New("events: sqlite: empty path")
	}
	if strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") || path == ":memory:" {
		// The driver would read these as DSN parameters, a URI, or a
		// database private to each pooled connection.
		return nil, fmt.Errorf("events: sqlite: path %q must be a plain file path without '?'", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("events: sqlite: create directory %s: %w", dir, err)
	}
	// SQLite reports an unwritable directory as "unable to open database
	// file" at the first statement, or later when WAL needs its -wal and
	// -shm files; probing here names the real problem.
	probe, err := os.CreateTemp(dir, ".apiguard-write-check-*")
	if err != nil {
		return nil, fmt.Errorf("events: sqlite: directory %s is not writable: %w", dir, err)
	}
	_ = probe.Close()
	_ = os.Remove(probe.Name())

	db, err := sql.Open("sqlite", path+sqliteDSNParams)
	if err != nil {
		return nil, fmt.Errorf("events: sqlite open %s: %w", path, err)
	}
	// Writes serialise on SQLite's lock anyway; the bound keeps a burst of
	// admin queries from opening a file handle and page cache each.
	db.SetMaxOpenConns(8)
	s := &sqliteStore{db: db, pruneChunk: defaultPruneChunk}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("events: sqlite %s: %w", path, err)
	}
	return s, nil
}

func (s *sqliteStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil) // immediate: concurrent openers queue here
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	// AUTOINCREMENT so that ids of pruned events are never handed out again:
	// a client paging with BeforeID must not see a new event appear in an
	// old page.
	for _, m := range migrations("INTEGER PRIMARY KEY AUTOINCREMENT") {
		if m.version <= current {
			continue
		}
		for _, stmt := range m.stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrate %d (%s): %w", m.version, m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?, ?, ?)",
			m.version, m.name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migrate %d: record: %w", m.version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

func (*sqliteStore) Name() string { return "sqlite" }

// sqliteRowsPerInsert rows go into one INSERT statement: measured about
// twice as fast as one statement per row, with no gain beyond 64. 64 rows of
// 23 columns stay far below SQLite's limit on bound parameters.
const sqliteRowsPerInsert = 64

var sqliteInsertFull = sqliteInsertSQL(sqliteRowsPerInsert)

func sqliteInsertSQL(rows int) string {
	row := "(?" + strings.Repeat(", ?", len(eventColumnList)-1) + ")"
	return "INSERT INTO events (" + eventColumns + ") VALUES " + row + strings.Repeat(", "+row, rows-1)
}

// Write inserts batch in one transaction, sqliteRowsPerInsert rows per
// statement.
func (s *sqliteStore) Write(ctx context.Context, batch []Event) error {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("events: sqlite insert: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var full *sql.Stmt
	if len(batch) >= sqliteRowsPerInsert {
		if full, err = tx.PrepareContext(ctx, sqliteInsertFull); err != nil {
			return fmt.Errorf("events: sqlite insert: %w", err)
		}
		defer full.Close()
	}
	args := make([]any, 0, min(len(batch), sqliteRowsPerInsert)*len(eventColumnList))
	for len(batch) > 0 {
		n := min(len(batch), sqliteRowsPerInsert)
		args = args[:0]
		for i := range n {
			a, err := eventArgs(&batch[i])
			if err != nil {
				return fmt.Errorf("events: sqlite insert: %w", err)
			}
			args = append(args, a...)
		}
		if n == sqliteRowsPerInsert {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, sqliteInsertSQL(n), args...)
		}
		if err != nil {
			return fmt.Errorf("events: sqlite insert: %w", err)
		}
		batch = batch[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("events: sqlite insert: commit: %w", err)
	}
	return nil
}

func (s *sqliteStore) WriteRollups(ctx context.Context, rows []Rollup) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("events: sqlite rollups: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO request_rollups ("+rollupColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return fmt.Errorf("events: sqlite rollups: %w", err)
	}
	defer stmt.Close()
	for i := range rows {
		if _, err := stmt.ExecContext(ctx, rollupArgs(&rows[i])...); err != nil {
			return fmt.Errorf("events: sqlite rollups: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("events: sqlite rollups: commit: %w", err)
	}
	return nil
}

func (s *sqliteStore) Query(ctx context.Context, f Filter) ([]Event, error) {
	q, args := f.querySQL(questionMark)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events: sqlite query: %w", err)
	}
	defer rows.Close()
	out, err := collectEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events: sqlite query: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) Count(ctx context.Context, f Filter) (int64, error) {
	q, args := f.countSQL(questionMark)
	var n int64
	if err := s.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("events: sqlite count: %w", err)
	}
	return n, nil
}

func (s *sqliteStore) Rates(ctx context.Context, f Filter, window time.Duration) ([]RateBucket, error) {
	if window <= 0 {
		return nil, errors.New("events: rates: window must be positive")
	}
	q, args := f.ratesSQL(questionMark, window)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events: sqlite rates: %w", err)
	}
	defer rows.Close()
	out, err := collectRates(rows, window)
	if err != nil {
		return nil, fmt.Errorf("events: sqlite rates: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx,
			"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time_ns < ? LIMIT ?)",
			unixNano(before), s.pruneChunk)
		if err != nil {
			return total, fmt.Errorf("events: sqlite prune: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("events: sqlite prune: %w", err)
		}
		total += n
		if n < int64(s.pruneChunk) {
			// Rollups age out with the events (not counted: they are not events).
			if _, err := s.db.ExecContext(ctx, "DELETE FROM request_rollups WHERE bucket_ns < ?", unixNano(before)); err != nil {
				return total, fmt.Errorf("events: prune rollups: %w", err)
			}
			return total, nil
		}
	}
}

func (s *sqliteStore) Close() error {
	s.closeOnce.Do(func() {
		// Checkpoint so the -wal file does not outlive the process; a
		// failure here is harmless, the next open replays the WAL.
		_, _ = s.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}
