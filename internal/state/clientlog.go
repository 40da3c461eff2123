package state

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// SetClientLogger sends the Redis client library's own messages (one per
// failed dial, process-wide) to log at Debug level. The gateway reports
// backend faults once per transition through its health watch; left alone,
// the library would write a line to stderr for every call during an outage.
func SetClientLogger(log *slog.Logger) {
	redis.SetLogger(clientLogger{log})
}

type clientLogger struct{ log *slog.Logger }

func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}
