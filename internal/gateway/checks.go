package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/apiguard/apiguard/internal/attest"
	"github.com/apiguard/apiguard/internal/bot"
	"github.com/apiguard/apiguard/internal/checks/apikey"
	"github.com/apiguard/apiguard/internal/checks/attestation"
	"github.com/apiguard/apiguard/internal/checks/authz"
	botcheck "github.com/apiguard/apiguard/internal/checks/bot"
	"github.com/apiguard/apiguard/internal/checks/graphql"
	"github.com/apiguard/apiguard/internal/checks/httpsig"
	"github.com/apiguard/apiguard/internal/checks/iplist"
	"github.com/apiguard/apiguard/internal/checks/jwt"
	"github.com/apiguard/apiguard/internal/checks/mtls"
	"github.com/apiguard/apiguard/internal/checks/nosql"
	"github.com/apiguard/apiguard/internal/checks/openapi"
	"github.com/apiguard/apiguard/internal/checks/ratelimit"
	"github.com/apiguard/apiguard/internal/checks/ssrf"
	"github.com/apiguard/apiguard/internal/checks/waf"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/pipeline"
	"github.com/apiguard/apiguard/internal/state"
)

// checkSpec is one row of the explicit check table: how to find a check's
// config and build it. Adding a check means adding a row here and a field to
// config.Checks; there is no init() registration.
type checkSpec struct {
	name  string
	phase pipeline.Phase
	// configured reports whether c has a config for the check, so a route's
	// config replaces the global one wholesale.
	configured func(c *config.Checks) bool
	// build may return a nil check when the config has nothing for this
	// row (e.g. no early rate-limit policies).
	build func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error)
}

// deps are the shared services a check may need, and the bookkeeping of
// one runtime build.
type deps struct {
	state  state.Backend
	keys   *lazyKeys // API keys, shared across routes and reloads
	attest *attest.Service
	bot    *bot.Service // nil without the top-level bot:
	client *http.Client // outbound fetches (JWKS)
	log    *slog.Logger
	// global caches checks built from the global config, so every route
	// that inherits a check shares one instance (one JWKS fetcher, one
	// token cache).
	global map[string]builtCheck
	// closers are the built checks that own goroutines or connections;
	// the runtime closes them when it is retired.
	closers *[]io.Closer
}

var checkTable = []checkSpec{
	{
		// Blocked addresses and fingerprints, deny lists and geo-fences
		// are refused before any expensive check runs.
		name:       "bot-early",
		phase:      pipeline.PhaseDecisions,
		configured: func(c *config.Checks) bool { return c.Bot != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := botcheck.New(*c.Bot, d.bot, d.state)
			if err != nil {
				return nil, pipeline.Options{}, err
			}
			return chk.Early(), c.Bot.Options, nil
		},
	},
	{
		// Decisions on the subject, API key or device, challenges (which
		// an attested app passes) and actions by risk score, once the
		// identity is known.
		name:       "bot",
		phase:      pipeline.PhaseBehavior,
		configured: func(c *config.Checks) bool { return c.Bot != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := botcheck.New(*c.Bot, d.bot, d.state)
			if err != nil {
				return nil, pipeline.Options{}, err
			}
			return chk.Late(), c.Bot.Options, nil
		},
	},
	{
		name:       "jwt",
		phase:      pipeline.PhaseAuthenticate,
		configured: func(c *config.Checks) bool { return c.JWT != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := jwt.New(*c.JWT, d.client, d.log.With("check", "jwt"))
			if err != nil {
				return nil, pipeline.Options{}, err
			}
			return chk, c.JWT.Options, nil
		},
	},
	{
		// Policies whose key is known before authentication (IP, JA4,
		// headers) refuse floods before any expensive check runs.
		name:       "ratelimit-early",
		phase:      pipeline.PhaseRateLimitEarly,
		configured: func(c *config.Checks) bool { return c.RateLimit != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			return buildRateLimit(c, d, true)
		},
	},
	{
		name:       "apikey",
		phase:      pipeline.PhaseAuthenticate,
		configured: func(c *config.Checks) bool { return c.APIKey != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			keys, err := d.keys.get()
			if err != nil {
				return nil, pipeline.Options{}, err
			}
			return apikey.New(*c.APIKey, keys), c.APIKey.Options, nil
		},
	},
	{
		name:       "httpsig",
		phase:      pipeline.PhaseAuthenticate,
		configured: func(c *config.Checks) bool { return c.HTTPSig != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := httpsig.New(*c.HTTPSig, d.state)
			return chk, c.HTTPSig.Options, err
		},
	},
	{
		name:       "mtls",
		phase:      pipeline.PhaseAuthenticate,
		configured: func(c *config.Checks) bool { return c.MTLS != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := mtls.New(*c.MTLS)
			return chk, c.MTLS.Options, err
		},
	},
	{
		name:       "attestation",
		phase:      pipeline.PhaseAttest,
		configured: func(c *config.Checks) bool { return c.Attestation != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			if d.attest == nil {
				return nil, pipeline.Options{}, fmt.Errorf("the attestation service is not configured")
			}
			return attestation.New(*c.Attestation, d.attest, d.state), c.Attestation.Options, nil
		},
	},
	{
		name:       "authz",
		phase:      pipeline.PhaseAuthorize,
		configured: func(c *config.Checks) bool { return c.Authz != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := authz.New(*c.Authz)
			return chk, c.Authz.Options, err
		},
	},
	{
		name:       "ratelimit",
		phase:      pipeline.PhaseRateLimit,
		configured: func(c *config.Checks) bool { return c.RateLimit != nil },
		build: func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error) {
			return buildRateLimit(c, d, false)
		},
	},
	{
		// Before the inspection checks: it marks the values it proved
		// typed, which the WAF then need not scan.
		name:       "openapi",
		phase:      pipeline.PhaseValidate,
		configured: func(c *config.Checks) bool { return c.OpenAPI != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := openapi.New(*c.OpenAPI)
			return chk, c.OpenAPI.Options, err
		},
	},
	{
		name:       "graphql",
		phase:      pipeline.PhaseValidate,
		configured: func(c *config.Checks) bool { return c.GraphQL != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			return graphql.New(*c.GraphQL), c.GraphQL.Options, nil
		},
	},
	{
		name:       "nosql",
		phase:      pipeline.PhaseInspect,
		configured: func(c *config.Checks) bool { return c.NoSQL != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			return nosql.New(*c.NoSQL), c.NoSQL.Options, nil
		},
	},
	{
		name:       "ssrf",
		phase:      pipeline.PhaseInspect,
		configured: func(c *config.Checks) bool { return c.SSRF != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := ssrf.New(*c.SSRF)
			return chk, c.SSRF.Options, err
		},
	},
	{
		// After nosql and ssrf, and after schema validation has marked
		// the typed values it need not scan.
		name:       "waf",
		phase:      pipeline.PhaseInspect,
		configured: func(c *config.Checks) bool { return c.WAF != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			chk, err := waf.New(*c.WAF)
			return chk, c.WAF.Options, err
		},
	},
	{
		name:       "iplist",
		phase:      pipeline.PhaseDecisions,
		configured: func(c *config.Checks) bool { return c.IPList != nil },
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			if c.IPList == nil {
				return nil, pipeline.Options{}, nil
			}
			chk, err := iplist.New(*c.IPList)
			return chk, c.IPList.Options, err
		},
	},
}

func buildRateLimit(c *config.Checks, d deps, early bool) (pipeline.Check, pipeline.Options, error) {
	if c.RateLimit == nil {
		return nil, pipeline.Options{}, nil
	}
	e, l, err := ratelimit.Build(*c.RateLimit, d.state)
	if err != nil {
		return nil, pipeline.Options{}, err
	}
	chk := l
	if early {
		chk = e
	}
	if chk == nil {
		return nil, pipeline.Options{}, nil
	}
	// Backend errors are handled per policy (on_error there), so the
	// check itself never fails closed on them.
	opts := c.RateLimit.Options
	if opts.OnError == "" {
		opts.OnError = pipeline.OnErrorAllow
	}
	return chk, opts, nil
}

// buildPipeline builds the checks of one route: a check configured on the
// route replaces the global config of the same check.
func buildPipeline(global, route *config.Checks, mode pipeline.Mode, d deps, obs pipeline.Observer) (*pipeline.Pipeline, error) {
	var entries []pipeline.Entry
	for _, spec := range checkTable {
		src := global
		if route != nil && spec.configured(route) {
			src = route
		}
		if src == nil || !spec.configured(src) {
			continue
		}
		chk, opts, err := buildCheck(spec, src, src == global, d)
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", spec.name, err)
		}
		if chk == nil {
			continue
		}
		entries = append(entries, pipeline.Entry{Check: chk, Phase: spec.phase, Mode: opts.Mode, OnError: opts.OnError})
	}
	return pipeline.New(entries, mode, obs), nil
}

// buildCheck builds one check, reusing the instance built from the global
// config when there is one.
func buildCheck(spec checkSpec, src *config.Checks, fromGlobal bool, d deps) (pipeline.Check, pipeline.Options, error) {
	if fromGlobal && d.global != nil {
		if b, ok := d.global[spec.name]; ok {
			return b.check, b.opts, nil
		}
	}
	chk, opts, err := spec.build(src, d)
	if err != nil || chk == nil {
		return nil, opts, err
	}
	if c, ok := chk.(io.Closer); ok && d.closers != nil {
		*d.closers = append(*d.closers, c)
	}
	if fromGlobal && d.global != nil {
		d.global[spec.name] = builtCheck{chk, opts}
	}
	return chk, opts, nil
}

type builtCheck struct {
	check pipeline.Check
	opts  pipeline.Options
}
