package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// benchAdminToken is the admin token written into every generated config.
const benchAdminToken = "bench-admin-token-0123456789"

// profile is one apiguard configuration to benchmark, run as target
// "apiguard-<name>". To add one, append to profiles; the template gets a
// profileVars, the function q, which quotes a string for YAML, and the
// function file, which gives the quoted path of one of the profile's files.
type profile struct {
	name string
	desc string
	yaml string
	// files are written into the data dir (.DataDir) before apiguard
	// starts, name -> content; the config refers to them with
	// {{file "name"}}.
	files map[string]string
	// optIn profiles are left out of the default -profiles list.
	optIn bool
	// waf profiles must refuse the harness's attack probes (see probe.go).
	waf bool
}

// profileVars are the values a profile template is rendered with.
type profileVars struct {
	Listen      string // public listener, host:port
	Admin       string // admin listener, host:port
	AdminToken  string
	DataDir     string
	UpstreamURL string // http://host:port of the upstream
}

// profileHead is shared by the built-in profiles: listeners, data dir, the
// upstream and the catch-all route's first keys.
const profileHead = `listen: {{q .Listen}}
admin: {listen: {{q .Admin}}, token: {{q .AdminToken}}}
data_dir: {{q .DataDir}}
upstreams: {app: {targets: [{{q .UpstreamURL}}]}}
`

var profiles = []profile{
	{
		name: "none",
		desc: "no checks, event store off (default limits still apply)",
		yaml: profileHead + `routes: [{name: api, path_prefix: /, upstream: app}]
events: {store: {driver: none}}
log: {level: warn}
`,
	},
	{
		name: "limits-events",
		desc: "default limits, iplist deny check on the route, SQLite event store with its defaults (request rollups, verdict rows)",
		yaml: profileHead + `routes:
  - name: api
    path_prefix: /
    upstream: app
    checks: {iplist: {deny: [203.0.113.0/24]}}
events: {store: {driver: sqlite}}
log: {level: warn}
`,
	},
	{
		name: "events-all",
		desc: "limits-events storing one SQLite row per request (events.store.requests: all), for comparison",
		yaml: profileHead + `routes:
  - name: api
    path_prefix: /
    upstream: app
    checks: {iplist: {deny: [203.0.113.0/24]}}
events: {store: {driver: sqlite, requests: all}}
log: {level: warn}
`,
	},
	{
		name: "ratelimit-memory",
		desc: "no-checks profile plus one per-client rate-limit policy (high enough never to refuse) on the memory backend",
		yaml: profileHead + `routes:
  - name: api
    path_prefix: /
    upstream: app
    checks: {ratelimit: {policies: [{name: per-client, key: [ip], limits: [{rate: 100000000/s}]}]}}
events: {store: {driver: none}}
log: {level: warn}
`,
	},
	{
		name: "openapi-waf",
		desc: "OpenAPI 3.1 spec of the shop workload (undeclared: block, additional_properties: reject, response checks off) + waf (CRS PL1, schema-aware), SQLite event store",
		yaml: profileHead + `routes:
  - name: api
    path_prefix: /
    upstream: app
    checks:
      openapi:
        spec: {{file "shop-openapi.yaml"}}
        undeclared: block
        additional_properties: reject
        response: {undeclared_properties: "off", undeclared_status: "off"}
      waf: {paranoia_level: 1}
events: {store: {driver: sqlite}}
log: {level: warn}
`,
		files: map[string]string{"shop-openapi.yaml": shopSpec},
		optIn: true,
		waf:   true,
	},
	{
		name: "ratelimit-redis",
		desc: "the same policy on the Redis backend at 127.0.0.1:6379: one EVALSHA round trip per request",
		yaml: profileHead + `routes:
  - name: api
    path_prefix: /
    upstream: app
    checks: {ratelimit: {policies: [{name: per-client, key: [ip], limits: [{rate: 100000000/s}]}]}}
state: {backend: redis, redis: {addrs: [127.0.0.1:6379], key_prefix: "apiguard-bench:"}}
events: {store: {driver: none}}
log: {level: warn}
`,
	},
}

func profileNames() []string {
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.name
	}
	return names
}

// defaultProfiles is the default of -profiles: every profile but the
// opt-in ones.
func defaultProfiles() []string {
	var names []string
	for _, p := range profiles {
		if !p.optIn {
			names = append(names, p.name)
		}
	}
	return names
}

// selectProfiles resolves a comma-separated list of profile names.
func selectProfiles(list string) ([]profile, error) {
	var out []profile
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		found := false
		for _, p := range profiles {
			if p.name == name {
				out = append(out, p)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown profile %q (known: %s)", name, strings.Join(profileNames(), ", "))
		}
	}
	return out, nil
}

// yamlQuote quotes s as a YAML double-quoted scalar (JSON strings are one).
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// render fills a profile's template.
func (p profile) render(v profileVars) ([]byte, error) {
	file := func(name string) (string, error) {
		if _, ok := p.files[name]; !ok {
			return "", fmt.Errorf("profile %s has no file %q", p.name, name)
		}
		return yamlQuote(filepath.Join(v.DataDir, name)), nil
	}
	t, err := template.New(p.name).Funcs(template.FuncMap{"q": yamlQuote, "file": file}).Option("missingkey=error").Parse(p.yaml)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.name, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.name, err)
	}
	return buf.Bytes(), nil
}

// writeFiles writes the profile's files into dataDir (created if needed).
func (p profile) writeFiles(dataDir string) error {
	if len(p.files) == 0 {
		return nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	for name, content := range p.files {
		if err := os.WriteFile(filepath.Join(dataDir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
