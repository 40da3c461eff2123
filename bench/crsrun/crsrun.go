// Package crsrun runs the OWASP CRS regression tests (the go-ftw YAML files
// shipped in the coraza-coreruleset module's tests/ folder) against an HTTP
// endpoint and scores them by status, the way a client sees a WAF: a test
// that expects rules to fire must be refused (status >= 400), a test that
// expects none must pass. go-ftw itself cannot be installed here (the
// module proxy refuses one of its CLI dependencies), and matching rule ids
// in a WAF log is not what an API owner cares about anyway.
package crsrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Test is one stage of a CRS test.
type Test struct {
	File   string // e.g. REQUEST-942-APPLICATION-ATTACK-SQLI/942100.yaml
	RuleID int
	ID     string // rule_id-test_id
	Attack bool   // expects rules to fire
	Raw    []byte // the request as sent on the wire
}

type ftwFile struct {
	RuleID int `yaml:"rule_id"`
	Tests  []struct {
		TestID any `yaml:"test_id"`
		Stages []struct {
			Input struct {
				Method              string            `yaml:"method"`
				URI                 string            `yaml:"uri"`
				Version             string            `yaml:"version"`
				Headers             map[string]string `yaml:"headers"`
				Data                string            `yaml:"data"`
				EncodedRequest      string            `yaml:"encoded_request"`
				AutocompleteHeaders *bool             `yaml:"autocomplete_headers"`
			} `yaml:"input"`
			Output struct {
				Log struct {
					ExpectIDs   []int `yaml:"expect_ids"`
					NoExpectIDs []int `yaml:"no_expect_ids"`
				} `yaml:"log"`
				ExpectError bool `yaml:"expect_error"`
			} `yaml:"output"`
		} `yaml:"stages"`
	} `yaml:"tests"`
}

// Load reads every test under dir (the module's tests/ folder). Stages
// that check neither expect_ids nor no_expect_ids are skipped.
func Load(dir string) ([]Test, error) {
	var out []Test
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var f ftwFile
		if err := yaml.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rel, _ := filepath.Rel(dir, path)
		for _, t := range f.Tests {
			for i, st := range t.Stages {
				log := st.Output.Log
				if len(log.ExpectIDs) == 0 && len(log.NoExpectIDs) == 0 {
					continue
				}
				in := st.Input
				var raw []byte
				if in.EncodedRequest != "" {
					if raw, err = base64.StdEncoding.DecodeString(in.EncodedRequest); err != nil {
						continue
					}
				} else {
					raw = build(in.Method, in.URI, in.Version, in.Headers, in.Data, in.AutocompleteHeaders == nil || *in.AutocompleteHeaders)
				}
				out = append(out, Test{File: rel, RuleID: f.RuleID, ID: fmt.Sprintf("%d-%v-%d", f.RuleID, t.TestID, i), Attack: len(log.ExpectIDs) > 0, Raw: raw})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// build writes a request like go-ftw does: the request line and headers as
// given, Content-Length and Connection: close added unless autocomplete is
// off.
func build(method, uri, version string, headers map[string]string, data string, autocomplete bool) []byte {
	if method == "" {
		method = "GET"
	}
	if uri == "" {
		uri = "/"
	}
	if version == "" {
		version = "HTTP/1.1"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", method, uri, version)
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	has := func(name string) bool {
		for _, k := range keys {
			if strings.EqualFold(k, name) {
				return true
			}
		}
		return false
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\r\n", k, headers[k])
	}
	if autocomplete {
		if data != "" && !has("Content-Length") && !has("Transfer-Encoding") {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(data))
		}
		if !has("Connection") {
			b.WriteString("Connection: close\r\n")
		}
	}
	b.WriteString("\r\n")
	b.WriteString(data)
	return b.Bytes()
}

// Result is one test's outcome.
type Result struct {
	Test   Test
	Status int // 0: no response (the connection was closed or timed out)
	Passed bool
}

// Report summarises a run.
type Report struct {
	Results                 []Result
	Attacks, AttacksBlocked int
	Benign, BenignPassed    int
	ByFamily                map[string][2]int // file prefix (e.g. REQUEST-942-APPLICATION-ATTACK-SQLI) -> passed, total
}

// AttackRate and BenignRate are the shares of tests scored as passed.
func (r *Report) AttackRate() float64 { return ratio(r.AttacksBlocked, r.Attacks) }
func (r *Report) BenignRate() float64 { return ratio(r.BenignPassed, r.Benign) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Run sends every test to addr (host:port) with the given parallelism.
func Run(ctx context.Context, addr string, tests []Test, parallel int) *Report {
	results := make([]Result, len(tests))
	var wg sync.WaitGroup
	next := make(chan int)
	for range max(1, parallel) {
		wg.Go(func() {
			for i := range next {
				results[i] = runOne(ctx, addr, tests[i])
			}
		})
	}
	for i := range tests {
		next <- i
	}
	close(next)
	wg.Wait()
	rep := &Report{Results: results, ByFamily: map[string][2]int{}}
	for _, r := range results {
		fam, _, _ := strings.Cut(r.Test.File, string(filepath.Separator))
		f := rep.ByFamily[fam]
		f[1]++
		if r.Passed {
			f[0]++
		}
		rep.ByFamily[fam] = f
		if r.Test.Attack {
			rep.Attacks++
			if r.Passed {
				rep.AttacksBlocked++
			}
		} else {
			rep.Benign++
			if r.Passed {
				rep.BenignPassed++
			}
		}
	}
	return rep
}

func runOne(ctx context.Context, addr string, t Test) Result {
	res := Result{Test: t}
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return res
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(t.Raw); err != nil {
		// A server that refused the request early may close the
		// connection; still read what it answered.
		_ = err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		res.Status = resp.StatusCode
		_ = resp.Body.Close()
	}
	blocked := res.Status >= 400 || res.Status == 0
	res.Passed = blocked == t.Attack
	return res
}
