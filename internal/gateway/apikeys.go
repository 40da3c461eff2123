package gateway

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/apiguard/apiguard/internal/checks/apikey"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/state"
)

// apiKeyPoll is how often every instance re-reads the key table; changes
// announced on the state backend's feed apply at once.
const apiKeyPoll = 5 * time.Second

// lazyKeys opens the key view the first time an apikey check is built and
// shares it across routes and reloads.
type lazyKeys struct {
	once sync.Once
	keys *apikey.Keys
	err  error
	open func() (*apikey.Keys, error)
}

func (l *lazyKeys) get() (*apikey.Keys, error) {
	l.once.Do(func() { l.keys, l.err = l.open() })
	return l.keys, l.err
}

func (l *lazyKeys) close() {
	if l.keys != nil {
		_ = l.keys.Close()
	}
}

// KeyStoreLocation says where a config keeps API keys: the event-store
// database (SQLite file or PostgreSQL).
func KeyStoreLocation(cfg *config.Config) (driver, dsn string, err error) {
	st := cfg.Events.Store
	switch st.Driver {
	case "postgres":
		return "postgres", st.DSN, nil
	case "sqlite":
		if st.DSN != "" {
			return "sqlite", st.DSN, nil
		}
		return "sqlite", filepath.Join(cfg.DataDir, "events.db"), nil
	}
	return "", "", errors.New("API keys are kept in the event store: set events.store.driver to sqlite or postgres")
}

func newLazyKeys(cfg *config.Config, st state.Backend, log *slog.Logger) *lazyKeys {
	return &lazyKeys{open: func() (*apikey.Keys, error) {
		driver, dsn, err := KeyStoreLocation(cfg)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		store, err := apikey.OpenStore(ctx, driver, dsn)
		if err != nil {
			return nil, err
		}
		return apikey.NewKeys(store, st, apiKeyPoll, log.With("check", "apikey"))
	}}
}
