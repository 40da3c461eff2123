// Package testutil connects tests to the real services that run on the
// development and CI machines. A test that needs one skips with a clear
// message when it is unreachable, except under CI=true, where it fails.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Service addresses, overridable for other machines.
var (
	PostgresURL = envOr("APIGUARD_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	RedisAddr   = envOr("APIGUARD_TEST_REDIS", "127.0.0.1:6379")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// unavailable skips, or fails under CI, when a service cannot be reached.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI but unreachable: %v", what, err)
	}
	t.Skipf("%s unreachable (%v); start it or set CI=true to make this a failure", what, err)
}

// Postgres returns a DSN whose search_path is a fresh schema, dropped when the
// test ends, so parallel tests and packages never see each other's tables.
func Postgres(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, PostgresURL)
	if err != nil {
		unavailable(t, "PostgreSQL at "+PostgresURL, err)
		return ""
	}
	defer conn.Close(context.Background())
	schema := "t_" + randHex(6)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, PostgresURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	sep := "?"
	if strings.Contains(PostgresURL, "?") {
		sep = "&"
	}
	return PostgresURL + sep + "search_path=" + schema
}

// Redis returns the address of a reachable Redis server.
func Redis(t testing.TB) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", RedisAddr, 2*time.Second)
	if err != nil {
		unavailable(t, "Redis at "+RedisAddr, err)
		return ""
	}
	_ = c.Close()
	return RedisAddr
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
