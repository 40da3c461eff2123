package crsrun

import (
	"context"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Legit is a legitimate API request of the false-positive corpus
// (testdata/legit.yaml).
type Legit struct {
	Name        string `yaml:"name"`
	Method      string `yaml:"method"`
	Path        string `yaml:"path"`
	Query       string `yaml:"query"`
	ContentType string `yaml:"content_type"`
	Body        string `yaml:"body"`
}

// LoadLegit reads a corpus file.
func LoadLegit(path string) ([]Legit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Legit
	return out, yaml.Unmarshal(b, &out)
}

// RunLegit sends the corpus to baseURL and returns the names of the
// requests that were refused (status >= 400 or no answer).
func RunLegit(ctx context.Context, baseURL string, corpus []Legit) []string {
	var refused []string
	for _, l := range corpus {
		url := baseURL + l.Path
		if l.Query != "" {
			url += "?" + l.Query
		}
		req, err := http.NewRequestWithContext(ctx, l.Method, url, strings.NewReader(l.Body))
		if err != nil {
			refused = append(refused, l.Name)
			continue
		}
		if l.Body != "" {
			ct := l.ContentType
			if ct == "" {
				ct = "application/json"
			}
			req.Header.Set("Content-Type", ct)
		}
		req.Header.Set("User-Agent", "shop-app/1.4.2 (iPhone; iOS 18.1)")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			refused = append(refused, l.Name)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode >= 400 {
			refused = append(refused, l.Name)
		}
	}
	return refused
}
