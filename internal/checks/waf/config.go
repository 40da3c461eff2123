package waf

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/corazawaf/coraza-coreruleset/v4"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Config is the waf check's configuration. Mode monitor records
// would-deny verdicts (the pipeline runner applies it); the WAF itself
// always decides as if blocking, so monitor and enforce routes share one.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// ParanoiaLevel is the CRS paranoia level 1..4 (default 1). Higher
	// levels run more rules: more detections and more false positives.
	ParanoiaLevel int `yaml:"paranoia_level,omitempty"`
	// AnomalyThreshold is the inbound anomaly score at which a request is
	// refused (default 5: one critical rule).
	AnomalyThreshold int `yaml:"anomaly_threshold,omitempty"`
	// Exclusions switch CRS rules off, on the whole route or for some
	// parameters only.
	Exclusions []Exclusion `yaml:"exclusions,omitempty"`
	// MaxArgs bounds the values fed to the WAF one by one (default 512);
	// the rest are fed joined as one value, so padding cannot hide a
	// payload.
	MaxArgs int `yaml:"max_args,omitempty"`
}

// Exclusion switches CRS rules off.
type Exclusion struct {
	// RuleIDs are the CRS rule ids, e.g. 942100.
	RuleIDs []int `yaml:"rule_ids"`
	// Parameters limits the exclusion to these values, named like
	// pipeline.Request.Typed keys ("json:/comment", "query:q",
	// "cookie:session"); a name also covers JSON nested in that value.
	// Empty means everywhere on the route.
	Parameters []string `yaml:"parameters,omitempty"`
}

const (
	defaultParanoia  = 1
	defaultThreshold = 5
	defaultMaxArgs   = 512
	maxMaxArgs       = 1000
	maxThreshold     = 10000
)

// Headers are fed as headers, not arguments, so they cannot be excluded
// by parameter.
var paramPrefixes = []string{"query:", "path:", "cookie:", "json:", "form:"}

// Validate reports invalid fields under path.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	if c.ParanoiaLevel != 0 && (c.ParanoiaLevel < 1 || c.ParanoiaLevel > 4) {
		errs.Add(field.Join(path, "paranoia_level"), "must be 1 to 4, not %d", c.ParanoiaLevel)
	}
	if c.AnomalyThreshold < 0 || c.AnomalyThreshold > maxThreshold {
		errs.Add(field.Join(path, "anomaly_threshold"), "must be 1 to %d (default 5), not %d", maxThreshold, c.AnomalyThreshold)
	}
	if c.MaxArgs < 0 || c.MaxArgs > maxMaxArgs {
		errs.Add(field.Join(path, "max_args"), "must be 1 to %d (default %d), not %d", maxMaxArgs, defaultMaxArgs, c.MaxArgs)
	}
	known := knownRuleIDs()
	ep := field.Join(path, "exclusions")
	for i, ex := range c.Exclusions {
		at := field.Index(ep, i)
		if len(ex.RuleIDs) == 0 {
			errs.Add(field.Join(at, "rule_ids"), "at least one rule id is required")
		}
		for j, id := range ex.RuleIDs {
			ip := field.Index(field.Join(at, "rule_ids"), j)
			switch {
			case !known[id]:
				errs.Add(ip, "%d is not a rule of the embedded CRS", id)
			case id/1000 == 901 || id/1000 == 949:
				// Removing initialisation or the blocking evaluation
				// silently turns the whole WAF off.
				errs.Add(ip, "rule %d is CRS machinery, not a detection; excluding it disables the WAF", id)
			}
		}
		for j, p := range ex.Parameters {
			if !validParam(p) {
				errs.Add(field.Index(field.Join(at, "parameters"), j),
					"must be a parameter such as json:/comment, query:q, cookie:session, path:id or form:field, not %q", p)
			}
		}
	}
}

func validParam(p string) bool {
	for _, pre := range paramPrefixes {
		if name, ok := strings.CutPrefix(p, pre); ok && name != "" {
			if pre == "json:" && name[0] != '/' {
				return false
			}
			return !strings.ContainsAny(p, "\r\n\x00")
		}
	}
	return false
}

var ruleIDPattern = regexp.MustCompile(`\bid:'?(\d+)`)

// knownRuleIDs lists the rule ids of the embedded rule set, so a typo in
// an exclusion is reported at load time instead of silently excluding
// nothing.
var knownRuleIDs = sync.OnceValue(func() map[int]bool {
	ids := map[int]bool{}
	files, _ := fs.Glob(coreruleset.FS, "@owasp_crs/*.conf")
	files = append(files, "@coraza.conf-recommended")
	for _, f := range files {
		b, err := fs.ReadFile(coreruleset.FS, f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range ruleIDPattern.FindAllStringSubmatch(line, -1) {
				if id, err := strconv.Atoi(m[1]); err == nil {
					ids[id] = true
				}
			}
		}
	}
	return ids
})
