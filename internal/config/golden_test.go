package config_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/internal/config"
	"github.com/apiguard/apiguard/internal/config/field"
)

// Golden tests, in the style of Caddy's *.caddyfiletest: every
// testdata/<case>.yaml holds a config, then the separator line, then the
// expected result as YAML comments: "# ok", or the exact error lines
// "# <case>.yaml:LINE: path: message". The whole file is parsed (the expected
// section is only comments), so line numbers are the file's own.
//
// Files named middleware_*.yaml are parsed with Options{Middleware: true}.
//
// To accept new output after a deliberate change, review it and run
//
//	go test ./internal/config -run TestGolden -update

var update = flag.Bool("update", false, "rewrite the expected section of testdata/*.yaml golden files")

const goldenSep = "# ----------"

// goldenEnv is the whole environment golden files see.
var goldenEnv = map[string]string{
	"APIGUARD_ADMIN_TOKEN": "0123456789abcdef-admin",
	"APIGUARD_ETC":         "testdata/etc",
	"JSON_MAX_DEPTH":       "32",
	"READ_TIMEOUT":         "45s",
	"MAX_BODY":             "2MiB",
	"MASK_ERRORS":          "false",
	"UPSTREAM_HOST":        "10.0.0.5",
	"PG_PASSWORD":          "s3cret",
	"REDIS_PASSWORD":       "r3dis",
	"FIELD":                "listen",
	"INJECT":               "a\nb: c",
	"EMPTY":                "",
	"MAPS_API_KEY":         "maps-key-123",
}

func goldenLookup(name string) (string, bool) {
	v, ok := goldenEnv[name]
	return v, ok
}

func goldenOptions(name string) config.Options {
	return config.Options{Lookup: goldenLookup, Middleware: strings.HasPrefix(name, "middleware_")}
}

// splitGolden returns the file up to and including the separator line and
// the expected lines without their "# ".
func splitGolden(data []byte) (head []byte, want []string, ok bool) {
	i := bytes.Index(data, []byte("\n"+goldenSep+"\n"))
	switch {
	case i >= 0:
		i++
	case bytes.HasPrefix(data, []byte(goldenSep+"\n")):
		i = 0
	default:
		return nil, nil, false
	}
	end := i + len(goldenSep) + 1
	head = data[:end]
	for _, l := range strings.Split(strings.TrimRight(string(data[end:]), "\n"), "\n") {
		l = strings.TrimPrefix(l, "#")
		want = append(want, strings.TrimPrefix(l, " "))
	}
	return head, want, true
}

func goldenFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/")
	}
	return files
}

func TestGolden(t *testing.T) {
	for _, path := range goldenFiles(t) {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			head, want, ok := splitGolden(data)
			if !ok {
				t.Fatalf("%s: no %q line", path, goldenSep)
			}
			cfg, err := config.Parse(name, data, goldenOptions(name))
			got := []string{"ok"}
			if err != nil {
				got = strings.Split(err.Error(), "\n")
				checkErrorShape(t, name, err)
			} else if cfg == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			if *update {
				if !cmp.Equal(want, got) {
					var b bytes.Buffer
					b.Write(head)
					for _, l := range got {
						b.WriteString("# " + l + "\n")
					}
					if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("updated %s", path)
				}
				return
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: result mismatch (-want +got):\n%s\nIf the new output is right: go test ./internal/config -run TestGolden -update", path, diff)
			}
		})
	}
}

var errLineRe = regexp.MustCompile(`^([^:]+\.yaml)(?::(\d+))?: `)

// checkErrorShape checks the error contract: one error per line, each
// starting with FILE or FILE:LINE, sorted by line.
func checkErrorShape(t *testing.T, name string, err error) {
	t.Helper()
	var le *field.ListError
	if !errors.As(err, &le) {
		t.Errorf("error is %T, want *field.ListError", err)
	} else if n := strings.Count(err.Error(), "\n") + 1; n != len(le.Errs) {
		t.Errorf("%d error lines for %d errors", n, len(le.Errs))
	}
	last := 0
	for _, l := range strings.Split(err.Error(), "\n") {
		m := errLineRe.FindStringSubmatch(l)
		if m == nil || m[1] != name {
			t.Errorf("error line %q does not start with %q", l, name+":")
			continue
		}
		if m[2] == "" {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		if n < last {
			t.Errorf("errors not sorted by line: %q after line %d", l, last)
		}
		last = n
	}
}

// TestGoldenFullUsesEveryKey keeps testdata/full.yaml (the documentation
// example) complete: every key of the schema must appear in it.
func TestGoldenFullUsesEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	collectKeys(doc.Content[0], "", reflect.TypeOf(config.Config{}), used)
	var missing []string
	for _, k := range schemaKeys(reflect.TypeOf(config.Config{}), "") {
		if !used[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("testdata/full.yaml does not use these keys:\n%s", strings.Join(missing, "\n"))
	}
}

// schemaKeys lists the generic key paths of t: routes[].checks.iplist.deny,
// upstreams.*.targets.
func schemaKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch {
	case t == reflect.TypeOf(config.Duration(0)) || t == reflect.TypeOf(config.ByteSize(0)):
	case t.Kind() == reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "-" || !f.IsExported() {
				continue
			}
			if strings.Contains(opts, "inline") {
				out = append(out, schemaKeys(f.Type, prefix)...)
				continue
			}
			p := tag
			if prefix != "" {
				p = prefix + "." + tag
			}
			out = append(out, p)
			out = append(out, schemaKeys(f.Type, p)...)
		}
	case t.Kind() == reflect.Slice:
		out = append(out, schemaKeys(t.Elem(), prefix+"[]")...)
	case t.Kind() == reflect.Map:
		out = append(out, schemaKeys(t.Elem(), prefix+".*")...)
	}
	sort.Strings(out)
	return out
}

func collectKeys(n *yaml.Node, prefix string, t reflect.Type, used map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			collectKeys(n.Content[i+1], prefix+".*", t.Elem(), used)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if prefix != "" {
				p = prefix + "." + p
			}
			used[p] = true
			if ft, ok := yamlField(t, n.Content[i].Value); ok {
				collectKeys(n.Content[i+1], p, ft, used)
			}
		}
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for _, c := range n.Content {
			collectKeys(c, prefix+"[]", t.Elem(), used)
		}
	}
}

func yamlField(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			if ft, ok := yamlField(f.Type, key); ok {
				return ft, true
			}
		}
		if tag == key {
			return f.Type, true
		}
	}
	return nil, false
}
