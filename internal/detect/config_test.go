package detect

import (
	"bytes"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/internal/config/field"
)

func TestConfigZeroValueIsValid(t *testing.T) {
	t.Parallel()
	var errs field.Errors
	(&Config{}).Validate("detect", &errs)
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.flow != nil {
		t.Error("flows on without rules")
	}
	if e.rate == nil || e.timing == nil || e.scrape == nil || e.enum == nil || e.probe == nil || e.login == nil || e.nat == nil {
		t.Error("a detector is off by default")
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	const doc = `
fingerprint: ja4
cooldown: 30s
exempt_api_keys: [erp-sync]
nat: {window: 5m, max_scale: 4}
rate: {keys: [ip, sub], window: 30s, k: 4, floor: 50, min_samples: 200}
timing: {samples: 32, max_cv: 0.15, exclude: ["GET /api/notifications"]}
scraping: {window: 5m, methods: [GET, HEAD], templates: ["/api/products/{id}"], min_requests: 200}
enumeration: {templates: ["/api/orders/{id}"], query_params: [order_id], min_distinct: 10}
probing: {min_not_found: 30, weight: 0.5}
login:
  keys: [ip, net, fp]
  min_failures: 5
  user: {max_failures: 10}
  distributed: {window: 30m, min_ips: 20}
flows:
  rules:
    - name: checkout_after_cart
      step: POST /api/checkout
      after: [POST /api/cart]
      within: 30m
risk: {half_life: 10m}
`
	var c Config
	dec := yaml.NewDecoder(bytes.NewBufferString(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	var errs field.Errors
	c.Validate("detect", &errs)
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	e, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.fpMode != fpJA4 || e.rate.k != 4 || e.timing.size != 32 || e.scrape.minReqs != 200 || e.login.minFail != 5 ||
		e.login.distMinIPs != 20 || len(e.flow.rules) != 1 || e.probe.w != 0.5 || !e.exempt["erp-sync"] || !e.login.keys.has(KindFP) {
		t.Errorf("config not applied: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	neg := -1
	tests := []struct {
		desc string
		c    Config
		want []string // "path: message fragment"
	}{
		{"fingerprint", Config{Fingerprint: "md5"}, []string{"d.fingerprint: must be"}},
		{"cooldown", Config{Cooldown: "soon"}, []string{"d.cooldown: invalid duration"}},
		{"nat", Config{NAT: NATConfig{MaxScale: 1000, Window: "1ms"}}, []string{"d.nat.max_scale: must be between 1 and 64", "d.nat.window: must be between"}},
		{"exempt", Config{ExemptAPIKeys: []string{""}}, []string{"d.exempt_api_keys[0]: must not be empty"}},
		{"keys", Config{Rate: RateConfig{Common: Common{Keys: []string{"ip", "cookie"}}}}, []string{`d.rate.keys[1]: unknown key kind "cookie"`}},
		{"max keys", Config{Timing: TimingConfig{Common: Common{MaxKeys: neg}}}, []string{"d.timing.max_keys: must be between"}},
		{"weight", Config{Probe: ProbeConfig{Common: Common{Weight: 3}}}, []string{"d.probing.weight: must be > 0 and <= 2"}},
		{"rate", Config{Rate: RateConfig{K: -2, Alpha: 1.5, Window: "2h"}}, []string{"d.rate.k:", "d.rate.alpha:", "d.rate.window:"}},
		{"timing", Config{Timing: TimingConfig{Samples: 2, Exclude: []string{"/no-method"}}}, []string{"d.timing.samples:", "d.timing.exclude[0]:"}},
		{"scraping", Config{Scrape: ScrapeConfig{Methods: []string{"get"}, Templates: []string{"products"}, MinUniqueRatio: 1.5}}, []string{"d.scraping.methods[0]:", "d.scraping.templates[0]:", "d.scraping.min_unique_ratio:"}},
		{"enumeration", Config{Enum: EnumConfig{MinDistinct: 40, Params: []string{""}, OpaqueWeight: 2}}, []string{"d.enumeration.min_distinct: must be between 2 and 32", "d.enumeration.params[0]:", "d.enumeration.opaque_weight:"}},
		{"login", Config{Login: LoginConfig{MinFailureRatio: 2, User: UserLoginConfig{MaxClients: 1}, Distributed: DistributedLoginConfig{Window: "x"}}},
			[]string{"d.login.min_failure_ratio:", "d.login.user.max_clients:", "d.login.distributed.window:"}},
		{"flows", Config{Flow: FlowConfig{Rules: []FlowRule{
			{Name: "a", Step: "POST /x", After: []string{"POST /y"}},
			{Name: "a", Step: "checkout", After: nil, Within: "0s", Score: 101},
			{Name: "bad name!", Step: "POST /x", After: []string{"login|GET nope"}},
		}}}, []string{
			`d.flows.rules[1].name: duplicate rule "a"`, "d.flows.rules[1].step:", "d.flows.rules[1].after:",
			"d.flows.rules[1].within:", "d.flows.rules[1].score:", "d.flows.rules[2].name:", "d.flows.rules[2].after[0]:",
		}},
		{"risk", Config{Risk: RiskConfig{HalfLife: "-1s"}}, []string{"d.risk.half_life:"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var errs field.Errors
			tc.c.Validate("d", &errs)
			err := errs.Err()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if len(errs.List) != len(tc.want) {
				t.Errorf("%d errors, want %d:\n%v", len(errs.List), len(tc.want), err)
			}
			if _, err := New(tc.c, Options{}); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}
