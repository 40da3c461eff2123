package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/apiguard/apiguard/internal/checks/ratelimit"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/events"
)

func cmdRateLimit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "suggest" {
		fmt.Fprintln(stderr, "Usage: apiguard ratelimit suggest [-c FILE | --data-dir DIR | --dsn URL] [--since D] [--route NAME] [--json]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	fs := newFlagSet("ratelimit suggest", "apiguard ratelimit suggest [-c FILE | --data-dir DIR | --dsn URL] [--since D] [--route NAME] [--json]", stderr)
	file := fs.String("c", "", "config file: read the event store it names")
	dataDir := fs.String("data-dir", "", "read <data-dir>/events.db (default "+config.DefaultDataDir+")")
	dsn := fs.String("dsn", "", "read a PostgreSQL event store")
	since := fs.Duration("since", 24*time.Hour, "how far back to look")
	route := fs.String("route", "", "only this route")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, stop := parseFlags(fs, args[1:]); stop {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store, err := openEventStore(ctx, *file, *dataDir, *dsn)
	var cfgErr *field.ListError
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, err)
		return exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "apiguard ratelimit suggest:", err)
		return exitRuntime
	}
	defer store.Close()

	// Requests the gateway denied are left out: they are the traffic the
	// limits exist to stop, not the traffic to size them for.
	f := events.Filter{Kinds: []events.Kind{events.KindRequest}, NotAction: "deny", Route: *route, Since: time.Now().Add(-*since)}
	samples := map[time.Duration][]ratelimit.Sample{}
	for _, w := range []time.Duration{10 * time.Second, time.Minute, time.Hour} {
		buckets, err := store.Rates(ctx, f, w)
		if err != nil {
			fmt.Fprintln(stderr, "apiguard ratelimit suggest:", err)
			return exitRuntime
		}
		for _, b := range buckets {
			samples[w] = append(samples[w], ratelimit.Sample{Route: b.Route, Client: b.ClientIP, Count: b.Count})
		}
	}
	sugg := ratelimit.Suggest(samples)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sugg)
		return exitOK
	}
	if len(sugg) == 0 {
		fmt.Fprintf(stdout, "no recorded requests in the last %s: run traffic through the gateway with the event store on (events.store.requests: true)\n", *since)
		return exitOK
	}
	fmt.Fprintf(stdout, "Per-client request counts over the last %s (denied requests excluded): for each client its busiest window, then quantiles over clients.\n\n", *since)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ROUTE\tCLIENTS\tWINDOW\tP50\tP90\tP99\tMAX\t")
	for _, s := range sugg {
		for i, w := range s.Windows {
			name, clients := s.Route, fmt.Sprint(s.Clients)
			if i > 0 {
				name, clients = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t\n", name, clients, shortDur(w.Window), w.P50, w.P90, w.P99, w.Max)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(stdout, "\nSuggested limits: twice the peak of the busiest 1% of clients, rounded up; clients far above it (MAX) are")
	fmt.Fprintln(stdout, "outliers worth a look. Paste under the routes of your config:")
	fmt.Fprintln(stdout)
	for _, s := range sugg {
		fmt.Fprintf(stdout, "  - name: %s\n    checks:\n      ratelimit:\n        policies:\n          - name: %s-per-client\n            key: [ip]\n            limits:\n", s.Route, s.Route)
		for _, l := range s.Limits {
			if l.Burst > 0 {
				fmt.Fprintf(stdout, "              - {rate: %s, burst: %d}\n", l.Rate, l.Burst)
			} else {
				fmt.Fprintf(stdout, "              - {rate: %s}\n", l.Rate)
			}
		}
	}
	return exitOK
}

func shortDur(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// openEventStore opens the store a config names, or the one given directly.
func openEventStore(ctx context.Context, file, dataDir, dsn string) (events.Store, error) {
	switch {
	case dsn != "":
		return events.OpenPostgres(ctx, dsn)
	case file != "":
		cfg, err := config.Load(file, config.Options{})
		if err != nil {
			return nil, err
		}
		switch cfg.Events.Store.Driver {
		case "postgres":
			return events.OpenPostgres(ctx, cfg.Events.Store.DSN)
		case "none":
			return nil, fmt.Errorf("%s: events.store.driver is none: nothing was recorded", file)
		}
		if cfg.Events.Store.DSN != "" {
			return openSQLiteExisting(cfg.Events.Store.DSN)
		}
		return openSQLiteExisting(filepath.Join(cfg.DataDir, "events.db"))
	}
	if dataDir == "" {
		dataDir = config.DefaultDataDir
	}
	return openSQLiteExisting(filepath.Join(dataDir, "events.db"))
}

func openSQLiteExisting(path string) (events.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no event store at %s (is this the gateway's data dir?)", path)
	}
	return events.OpenSQLite(path)
}
