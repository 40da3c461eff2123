package attest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite"

	"github.com/apiguard/apiguard/internal/attest/providers/integrity"
)

// Provider names.
const (
	ProviderAppAttest = "appattest"
	ProviderKeyAttest = "keyattest"
	ProviderIntegrity = "integrity"
	ProviderPoW       = "pow"
)

// Providers lists every provider name.
var Providers = []string{ProviderAppAttest, ProviderKeyAttest, ProviderIntegrity, ProviderPoW}

// Release kinds.
const (
	ReleaseBinary        = "binary"         // id = SHA-256 hex of the binary (integrity)
	ReleaseAppleAppID    = "apple-app-id"   // id = "<TeamID>.<bundleID>" (appattest)
	ReleaseAndroidSigner = "android-signer" // id = SHA-256 hex of the signing certificate (keyattest)
)

// App is a registered app and its policy.
type App struct {
	ID        string   `json:"id"`
	Name      string   `json:"name,omitempty"`
	Providers []string `json:"providers"`
	// AndroidPackages are the package names keyattest accepts.
	AndroidPackages []string  `json:"android_packages,omitempty"`
	Policy          Policy    `json:"policy"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// Policy is what an app accepts beyond a genuine release.
type Policy struct {
	// AllowDebug accepts Apple's development environment (appattestdevelop).
	AllowDebug bool `json:"allow_debug,omitempty"`
	// AllowEmulator accepts Android keys attested in software only.
	AllowEmulator bool `json:"allow_emulator,omitempty"`
	// AllowUnlocked accepts Android devices with an unlocked bootloader or
	// an unverified boot.
	AllowUnlocked bool `json:"allow_unlocked,omitempty"`
	// RequireStrongBox demands Android StrongBox rather than the TEE.
	RequireStrongBox bool `json:"require_strongbox,omitempty"`
	// MinPatchLevel is the oldest Android OS patch level accepted (YYYYMM).
	MinPatchLevel int `json:"min_patch_level,omitempty"`
	// PoWDifficulty overrides the service's proof-of-work difficulty.
	PoWDifficulty int `json:"pow_difficulty,omitempty"`
}

// Allows reports whether the app may use provider.
func (a *App) Allows(provider string) bool { return slices.Contains(a.Providers, provider) }

// Release is one registered release of an app.
type Release struct {
	AppID     string    `json:"app_id"`
	Kind      string    `json:"kind"`
	ID        string    `json:"id"`
	Version   string    `json:"version,omitempty"`
	Size      int64     `json:"size,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revoked reports whether the release was revoked.
func (r *Release) Revoked() bool { return !r.RevokedAt.IsZero() }

// Registry errors.
var (
	ErrNoApp      = errors.New("attest: no such app")
	ErrNoRelease  = errors.New("attest: no such release")
	ErrAppExists  = errors.New("attest: app already exists")
	ErrBadRelease = errors.New("attest: invalid release")
)

// Store keeps apps and releases durably in the event-store database
// (SQLite or PostgreSQL). Binary releases keep their bytes, because an
// integrity challenge samples random ranges of them.
type Store struct {
	db     *sql.DB
	driver string
	ph     func(int) string
}

// OpenStore opens the registry tables in the SQLite file path, or in
// PostgreSQL when driver is "postgres".
func OpenStore(ctx context.Context, driver, dsnOrPath string) (*Store, error) {
	s := &Store{driver: driver, ph: func(int) string { return "?" }}
	blob := "BLOB"
	var err error
	switch driver {
	case "postgres":
		s.db, err = sql.Open("pgx", dsnOrPath)
		s.ph = func(n int) string { return fmt.Sprintf("$%d", n) }
		blob = "BYTEA"
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(dsnOrPath), 0o700); err != nil {
			return nil, fmt.Errorf("attest: %w", err)
		}
		s.db, err = sql.Open("sqlite", "file:"+dsnOrPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	default:
		return nil, fmt.Errorf("attest: no app registry for event store driver %q", driver)
	}
	if err != nil {
		return nil, fmt.Errorf("attest: open: %w", err)
	}
	if err := s.createTables(ctx, blob); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("attest: create tables: %w", err)
	}
	return s, nil
}

// createTables creates the registry tables. On PostgreSQL it holds an
// advisory lock, because instances starting together would otherwise race
// in CREATE TABLE IF NOT EXISTS (a unique violation in pg_type).
func (s *Store) createTables(ctx context.Context, blob string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if s.driver == "postgres" {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7305001)"); err != nil {
			return err
		}
	}
	for _, ddl := range []string{
		`CREATE TABLE IF NOT EXISTS attest_apps (
	id         TEXT PRIMARY KEY,
	spec       TEXT NOT NULL,
	created_ns BIGINT NOT NULL,
	updated_ns BIGINT NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS attest_releases (
	app_id     TEXT NOT NULL,
	kind       TEXT NOT NULL,
	id         TEXT NOT NULL,
	version    TEXT NOT NULL,
	size       BIGINT NOT NULL,
	created_ns BIGINT NOT NULL,
	revoked_ns BIGINT NOT NULL,
	PRIMARY KEY (app_id, kind, id)
)`,
		// Binaries are kept in chunks: a challenge reads 1 MiB of ranges,
		// and a chunked binary serves that without loading all of it (a
		// 20 MiB blob in one row costs 10 ms per attestation, chunks 1).
		`CREATE TABLE IF NOT EXISTS attest_release_chunks (
	app_id TEXT NOT NULL,
	id     TEXT NOT NULL,
	n      BIGINT NOT NULL,
	data   ` + blob + ` NOT NULL,
	PRIMARY KEY (app_id, id, n)
)`,
	} {
		if _, err := tx.ExecContext(ctx, ddl); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) q(query string) string {
	n := 0
	var b strings.Builder
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString(s.ph(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// PutApp creates (create true) or replaces an app.
func (s *Store) PutApp(ctx context.Context, a *App, create bool) error {
	spec, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if create {
		_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO attest_apps (id, spec, created_ns, updated_ns) VALUES (?, ?, ?, ?)`),
			a.ID, string(spec), ns(a.CreatedAt), ns(a.UpdatedAt))
		if err != nil {
			if _, gerr := s.App(ctx, a.ID); gerr == nil {
				return ErrAppExists
			}
			return fmt.Errorf("attest: create app: %w", err)
		}
		return nil
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE attest_apps SET spec = ?, updated_ns = ? WHERE id = ?`), string(spec), ns(a.UpdatedAt), a.ID)
	if err != nil {
		return fmt.Errorf("attest: update app: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoApp
	}
	return nil
}

// App reads one app.
func (s *Store) App(ctx context.Context, id string) (*App, error) {
	var spec string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT spec FROM attest_apps WHERE id = ?`), id).Scan(&spec)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoApp
	}
	if err != nil {
		return nil, fmt.Errorf("attest: read app: %w", err)
	}
	var a App
	if err := json.Unmarshal([]byte(spec), &a); err != nil {
		return nil, fmt.Errorf("attest: app %s: %w", id, err)
	}
	return &a, nil
}

// Apps lists every app, by id.
func (s *Store) Apps(ctx context.Context) ([]*App, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT spec FROM attest_apps ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("attest: list apps: %w", err)
	}
	defer rows.Close()
	var out []*App
	for rows.Next() {
		var spec string
		if err := rows.Scan(&spec); err != nil {
			return nil, err
		}
		var a App
		if err := json.Unmarshal([]byte(spec), &a); err != nil {
			return nil, err
		}
		out = append(out, &a)
	}
	return out, rows.Err()
}

// chunkSize is the size of one stored piece of a release binary.
const chunkSize = 64 << 10

// AddRelease registers a release; data is the binary for ReleaseBinary.
func (s *Store) AddRelease(ctx context.Context, r *Release, data []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("attest: add release: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO attest_releases (app_id, kind, id, version, size, created_ns, revoked_ns) VALUES (?, ?, ?, ?, ?, ?, 0)`),
		r.AppID, r.Kind, r.ID, r.Version, r.Size, ns(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("attest: add release (already registered?): %w", err)
	}
	for n := 0; n*chunkSize < len(data); n++ {
		chunk := data[n*chunkSize : min(len(data), (n+1)*chunkSize)]
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attest_release_chunks (app_id, id, n, data) VALUES (?, ?, ?, ?)`), r.AppID, r.ID, n, chunk); err != nil {
			return fmt.Errorf("attest: store release binary: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("attest: add release: %w", err)
	}
	return nil
}

// RegisterBinary registers a release binary of app from its bytes.
func (s *Store) RegisterBinary(ctx context.Context, appID, version string, data []byte, now time.Time) (*Release, error) {
	if len(data) < integrity.MinSize {
		return nil, fmt.Errorf("%w: a binary must have at least %d bytes", ErrBadRelease, integrity.MinSize)
	}
	if _, err := s.App(ctx, appID); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	r := &Release{AppID: appID, Kind: ReleaseBinary, ID: hex.EncodeToString(sum[:]), Version: version, Size: int64(len(data)), CreatedAt: now.UTC()}
	return r, s.AddRelease(ctx, r, data)
}

// Releases lists an app's releases ("" = every app's).
func (s *Store) Releases(ctx context.Context, appID string) ([]*Release, error) {
	query, args := `SELECT app_id, kind, id, version, size, created_ns, revoked_ns FROM attest_releases ORDER BY app_id, created_ns, id`, []any(nil)
	if appID != "" {
		query, args = s.q(`SELECT app_id, kind, id, version, size, created_ns, revoked_ns FROM attest_releases WHERE app_id = ? ORDER BY created_ns, id`), []any{appID}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("attest: list releases: %w", err)
	}
	defer rows.Close()
	var out []*Release
	for rows.Next() {
		var r Release
		var c, rv int64
		if err := rows.Scan(&r.AppID, &r.Kind, &r.ID, &r.Version, &r.Size, &c, &rv); err != nil {
			return nil, err
		}
		r.CreatedAt, r.RevokedAt = fromNS(c), fromNS(rv)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// RevokeRelease revokes a release by id (any kind); new attestations with
// it fail at once, tokens already issued live until their exp.
func (s *Store) RevokeRelease(ctx context.Context, appID, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE attest_releases SET revoked_ns = ? WHERE app_id = ? AND id = ? AND revoked_ns = 0`), now.UnixNano(), appID, id)
	if err != nil {
		return fmt.Errorf("attest: revoke: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoRelease
	}
	return nil
}

// readRanges reads byte ranges of a binary release (only the chunks they
// touch, in one query) and returns their bytes in order, in pieces.
func (s *Store) readRanges(ctx context.Context, appID, id string, ranges []integrity.Range) ([][]byte, error) {
	need := map[int64]bool{}
	for _, r := range ranges {
		for n := r.Offset / chunkSize; n <= (r.Offset+r.Length-1)/chunkSize; n++ {
			need[n] = true
		}
	}
	var b strings.Builder
	b.WriteString("SELECT n, data FROM attest_release_chunks WHERE app_id = ? AND id = ? AND n IN (")
	args := []any{appID, id}
	first := true
	for n := range need {
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString("?")
		args = append(args, n)
	}
	b.WriteString(")")
	rows, err := s.db.QueryContext(ctx, s.q(b.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("attest: read release: %w", err)
	}
	defer rows.Close()
	chunks := make(map[int64][]byte, len(need))
	for rows.Next() {
		var n int64
		var data []byte
		if err := rows.Scan(&n, &data); err != nil {
			return nil, fmt.Errorf("attest: read release: %w", err)
		}
		chunks[n] = data
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attest: read release: %w", err)
	}
	// The bytes of the ranges in order, as slices of the chunks (no copy):
	// the HMAC only needs them in sequence.
	var parts [][]byte
	for _, r := range ranges {
		for off := r.Offset; off < r.Offset+r.Length; {
			c := chunks[off/chunkSize]
			lo := off % chunkSize
			if lo >= int64(len(c)) {
				return nil, ErrNoRelease // a range past the stored binary
			}
			take := min(int64(len(c))-lo, r.Offset+r.Length-off)
			parts = append(parts, c[lo:lo+take])
			off += take
		}
	}
	return parts, nil
}

// registryCacheTTL bounds how stale a cached app may be: a revocation made
// with `apiguard app revoke` on any machine applies within it.
const registryCacheTTL = time.Second

// Registry is the service's read view of the Store, cached briefly so a
// burst of attestations does not become a burst of queries.
type Registry struct {
	store *Store
	now   func() time.Time
	mu    sync.Mutex
	apps  map[string]cachedApp
}

type cachedApp struct {
	app      *App
	releases []*Release
	at       time.Time
}

// NewRegistry wraps a store.
func NewRegistry(s *Store) *Registry {
	return &Registry{store: s, now: time.Now, apps: map[string]cachedApp{}}
}

// Store returns the underlying store.
func (r *Registry) Store() *Store { return r.store }

// Lookup returns an app and its releases.
func (r *Registry) Lookup(ctx context.Context, appID string) (*App, []*Release, error) {
	now := r.now()
	r.mu.Lock()
	c, ok := r.apps[appID]
	r.mu.Unlock()
	if ok && now.Sub(c.at) < registryCacheTTL {
		if c.app == nil {
			return nil, nil, ErrNoApp
		}
		return c.app, c.releases, nil
	}
	app, err := r.store.App(ctx, appID)
	if err != nil && !errors.Is(err, ErrNoApp) {
		return nil, nil, err
	}
	var rels []*Release
	if app != nil {
		if rels, err = r.store.Releases(ctx, appID); err != nil {
			return nil, nil, err
		}
	}
	r.mu.Lock()
	if len(r.apps) > 10000 {
		clear(r.apps) // unknown app ids cannot grow the cache without bound
	}
	r.apps[appID] = cachedApp{app: app, releases: rels, at: now}
	r.mu.Unlock()
	if app == nil {
		return nil, nil, ErrNoApp
	}
	return app, rels, nil
}

// release finds an active or revoked release of kind and id.
func release(rels []*Release, kind, id string) *Release {
	for _, r := range rels {
		if r.Kind == kind && r.ID == id {
			return r
		}
	}
	return nil
}

// activeIDs lists the ids of an app's unrevoked releases of kind.
func activeIDs(rels []*Release, kind string) []string {
	var out []string
	for _, r := range rels {
		if r.Kind == kind && !r.Revoked() {
			out = append(out, r.ID)
		}
	}
	return out
}
