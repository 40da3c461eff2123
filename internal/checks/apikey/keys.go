// Package apikey authenticates clients by API key. Keys are shown once when
// created; the gateway stores only a SHA-256 of their secret part, looks
// them up by their public id and compares hashes in constant time. Keys
// carry scopes and an expiry, and a revocation reaches every instance
// through the state backend's change feed.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx" for database/sql
	_ "modernc.org/sqlite"             // SQLite driver "sqlite"
)

// Prefix marks apiguard API keys so secret scanners can find leaked ones.
const Prefix = "agk_"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Key is a stored API key: never the secret, only its hash.
type Key struct {
	ID        string
	Name      string
	Scopes    []string
	Hash      []byte // SHA-256 of the secret part
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: active
}

// Generate makes a new key: the plaintext to show once, and what to store.
// The secret has 256 bits of entropy, so a fast hash is enough (no
// password-style stretching is needed to resist guessing).
func Generate(name string, scopes []string, ttl time.Duration, now time.Time) (string, Key) {
	id := make([]byte, 5)
	secret := make([]byte, 32)
	_, _ = rand.Read(id)
	_, _ = rand.Read(secret)
	idStr := strings.ToLower(b32.EncodeToString(id))
	secStr := strings.ToLower(b32.EncodeToString(secret))
	sum := sha256.Sum256([]byte(secStr))
	k := Key{ID: idStr, Name: name, Scopes: scopes, Hash: sum[:], CreatedAt: now.UTC()}
	if ttl > 0 {
		k.ExpiresAt = now.Add(ttl).UTC()
	}
	return Prefix + idStr + "_" + secStr, k
}

// parse splits a presented key into id and secret.
func parse(s string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(s, Prefix)
	if !found || len(rest) > 128 {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

// matches compares the secret's hash with the stored one in constant time.
func (k *Key) matches(secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], k.Hash) == 1
}

// Store keeps keys durably in the event-store database (SQLite or
// PostgreSQL), in table api_keys.
type Store struct {
	db *sql.DB
	ph func(int) string
}

// OpenStore opens the key table in the SQLite file path, or in PostgreSQL
// when dsn is a postgres:// URL.
func OpenStore(ctx context.Context, driver, dsnOrPath string) (*Store, error) {
	s := &Store{ph: func(int) string { return "?" }}
	var err error
	switch driver {
	case "postgres":
		s.db, err = sql.Open("pgx", dsnOrPath)
		s.ph = func(n int) string { return fmt.Sprintf("$%d", n) }
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(dsnOrPath), 0o700); err != nil {
			return nil, fmt.Errorf("apikey: %w", err)
		}
		s.db, err = sql.Open("sqlite", "file:"+dsnOrPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	default:
		return nil, fmt.Errorf("apikey: no key store for event store driver %q", driver)
	}
	if err != nil {
		return nil, fmt.Errorf("apikey: open: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS api_keys (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	hash       TEXT NOT NULL,
	created_ns BIGINT NOT NULL,
	expires_ns BIGINT NOT NULL,
	revoked_ns BIGINT NOT NULL
)`); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("apikey: create table: %w", err)
	}
	return s, nil
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

// Create stores a key.
func (s *Store) Create(ctx context.Context, k Key) error {
	scopes, _ := json.Marshal(k.Scopes)
	_, err := s.db.ExecContext(ctx, fmt.Sprintf("INSERT INTO api_keys (id, name, scopes, hash, created_ns, expires_ns, revoked_ns) VALUES (%s, %s, %s, %s, %s, %s, 0)",
		s.ph(1), s.ph(2), s.ph(3), s.ph(4), s.ph(5), s.ph(6)),
		k.ID, k.Name, string(scopes), b32.EncodeToString(k.Hash), ns(k.CreatedAt), ns(k.ExpiresAt))
	if err != nil {
		return fmt.Errorf("apikey: create: %w", err)
	}
	return nil
}

// ErrNotFound is returned when revoking an id that does not exist.
var ErrNotFound = errors.New("apikey: no such key")

// Revoke marks a key revoked; new requests with it are refused at once.
func (s *Store) Revoke(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, fmt.Sprintf("UPDATE api_keys SET revoked_ns = %s WHERE id = %s AND revoked_ns = 0", s.ph(1), s.ph(2)), now.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("apikey: revoke: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// List returns every key, oldest first.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, name, scopes, hash, created_ns, expires_ns, revoked_ns FROM api_keys ORDER BY created_ns")
	if err != nil {
		return nil, fmt.Errorf("apikey: list: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		var k Key
		var scopes, hash string
		var c, e, r int64
		if err := rows.Scan(&k.ID, &k.Name, &scopes, &hash, &c, &e, &r); err != nil {
			return nil, fmt.Errorf("apikey: list: %w", err)
		}
		_ = json.Unmarshal([]byte(scopes), &k.Scopes)
		k.Hash, _ = b32.DecodeString(hash)
		k.CreatedAt, k.ExpiresAt, k.RevokedAt = fromNS(c), fromNS(e), fromNS(r)
		out = append(out, k)
	}
	return out, rows.Err()
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
