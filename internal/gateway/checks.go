package gateway

import (
	"fmt"

	"github.com/apiguard/apiguard/internal/checks/iplist"
	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// checkSpec is one row of the explicit check table: how to find a check's
// config and build it. Adding a check means adding a row here and a field to
// config.Checks; there is no init() registration.
type checkSpec struct {
	name  string
	phase pipeline.Phase
	// build returns nil, nil when the check is not configured.
	build func(c *config.Checks, d deps) (pipeline.Check, pipeline.Options, error)
}

// deps are the shared services a check may need.
type deps struct{}

var checkTable = []checkSpec{
	{
		name:  "iplist",
		phase: pipeline.PhaseDecisions,
		build: func(c *config.Checks, _ deps) (pipeline.Check, pipeline.Options, error) {
			if c.IPList == nil {
				return nil, pipeline.Options{}, nil
			}
			chk, err := iplist.New(*c.IPList)
			return chk, c.IPList.Options, err
		},
	},
}

// buildPipeline builds the checks of one route: a check configured on the
// route replaces the global config of the same check.
func buildPipeline(global, route *config.Checks, mode pipeline.Mode, d deps, obs pipeline.Observer) (*pipeline.Pipeline, error) {
	var entries []pipeline.Entry
	for _, spec := range checkTable {
		var (
			chk  pipeline.Check
			opts pipeline.Options
			err  error
		)
		if route != nil {
			chk, opts, err = spec.build(route, d)
		}
		if chk == nil && err == nil && global != nil {
			chk, opts, err = spec.build(global, d)
		}
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
