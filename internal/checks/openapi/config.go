package openapi

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel"
	"gopkg.in/yaml.v3"

	"github.com/apiguard/apiguard/internal/config/field"
	"github.com/apiguard/apiguard/internal/pipeline"
)

// Config is the openapi check's configuration.
type Config struct {
	pipeline.Options `yaml:",inline"`
	// Spec is the path of an OpenAPI 3.0 or 3.1 document (YAML or JSON),
	// in one file: external $refs are refused.
	Spec string `yaml:"spec"`
	// BasePath is stripped from the request path before matching the
	// spec's path templates, e.g. /api.
	BasePath string `yaml:"base_path,omitempty"`
	// Undeclared is what happens to operations the spec does not declare
	// (shadow APIs): block (default; 404, or 405 with Allow) or log.
	Undeclared string `yaml:"undeclared,omitempty"`
	// Deprecated is what happens to deprecated operations (zombie APIs):
	// block (403) or log (default).
	Deprecated string `yaml:"deprecated,omitempty"`
	// AdditionalProperties is spec (default: as the schema says) or reject:
	// refuse request properties no schema declares, even where the schema
	// allows them (mass assignment).
	AdditionalProperties string `yaml:"additional_properties,omitempty"`
	// Response configures response checking; it is on with defaults when
	// omitted (write-only properties are always removed).
	Response *ResponseConfig `yaml:"response,omitempty"`
}

// ResponseConfig configures response checking.
type ResponseConfig struct {
	// UndeclaredProperties: remove, flag (default) or off — excessive data exposure.
	UndeclaredProperties string `yaml:"undeclared_properties,omitempty"`
	// UndeclaredStatus: flag (default) or off, for status codes and content
	// types the operation does not declare.
	UndeclaredStatus string `yaml:"undeclared_status,omitempty"`
	// MaxBytes bounds response buffering (default 1 MiB); larger and
	// streaming responses pass unchecked.
	MaxBytes int64 `yaml:"max_bytes,omitempty"`
}

const (
	defaultMaxBytes = 1 << 20
	maxMaxBytes     = 64 << 20
)

// Validate reports invalid fields under path. It loads and compiles the spec.
func (c *Config) Validate(path string, errs *field.Errors) {
	c.Options.Validate(path, errs)
	oneOf := func(name, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		errs.Add(field.Join(path, name), "must be %s, not %q", strings.Join(allowed[1:], " or "), v)
	}
	oneOf("undeclared", c.Undeclared, "", "block", "log")
	oneOf("deprecated", c.Deprecated, "", "block", "log")
	oneOf("additional_properties", c.AdditionalProperties, "", "spec", "reject")
	if c.BasePath != "" && (!strings.HasPrefix(c.BasePath, "/") || strings.HasSuffix(c.BasePath, "/")) {
		errs.Add(field.Join(path, "base_path"), "must start with / and not end with /, e.g. /api")
	}
	if r := c.Response; r != nil {
		rp := field.Join(path, "response")
		if r.UndeclaredProperties != "" && r.UndeclaredProperties != "remove" && r.UndeclaredProperties != "flag" && r.UndeclaredProperties != "off" {
			errs.Add(field.Join(rp, "undeclared_properties"), "must be remove, flag or off, not %q", r.UndeclaredProperties)
		}
		if r.UndeclaredStatus != "" && r.UndeclaredStatus != "flag" && r.UndeclaredStatus != "off" {
			errs.Add(field.Join(rp, "undeclared_status"), "must be flag or off, not %q", r.UndeclaredStatus)
		}
		if r.MaxBytes < 0 || r.MaxBytes > maxMaxBytes {
			errs.Add(field.Join(rp, "max_bytes"), "must be between 0 (default 1 MiB) and %d", maxMaxBytes)
		}
	}
	if c.Spec == "" {
		errs.Add(field.Join(path, "spec"), "required: the path of an OpenAPI 3.0 or 3.1 document")
		return
	}
	if _, err := loadSpec(c.Spec); err != nil {
		errs.Add(field.Join(path, "spec"), "%v", err)
	}
}

// spec is a loaded and compiled document.
type spec struct {
	routes []*route
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// loadSpec reads, checks and compiles the document at file.
func loadSpec(file string) (*spec, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read the spec: %w", err)
	}
	// Parse once ourselves: yaml.v3 reports syntax errors with a line, and
	// the node tree shows every $ref with its position.
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			return nil, fmt.Errorf("%s:%s: %s", file, m[1], m[2])
		}
		return nil, fmt.Errorf("%s: %s", file, msg)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not an OpenAPI document (expected a mapping)", file)
	}
	if err := externalRefs(file, &root); err != nil {
		return nil, err
	}
	version := ""
	for i := 0; i+1 < len(root.Content[0].Content); i += 2 {
		if root.Content[0].Content[i].Value == "openapi" {
			version = root.Content[0].Content[i+1].Value
		}
	}
	if !strings.HasPrefix(version, "3.0.") && !strings.HasPrefix(version, "3.1.") {
		return nil, fmt.Errorf("%s: openapi version %q is not supported (3.0.x or 3.1.x)", file, version)
	}
	doc, err := libopenapi.NewDocumentWithConfiguration(b, &datamodel.DocumentConfiguration{
		// Refs were checked above; keep the loader from ever reaching out.
		AllowFileReferences: false, AllowRemoteReferences: false,
		IgnorePolymorphicCircularReferences: true, IgnoreArrayCircularReferences: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	model, err := doc.BuildV3Model()
	if err != nil && model == nil {
		return nil, fmt.Errorf("%s: %v", file, firstErr(err))
	}
	if err != nil && !onlyCircular(err) {
		return nil, fmt.Errorf("%s: %v", file, firstErr(err))
	}
	return compileDoc(file, &model.Model)
}

// externalRefs refuses $refs to other files or URLs: fetching at load
// would make the gateway's behaviour depend on what another server says.
func externalRefs(file string, n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "$ref" && v.Kind == yaml.ScalarNode && !strings.HasPrefix(v.Value, "#") {
				return fmt.Errorf("%s:%d: external $ref %q is not allowed; bundle the spec into one file", file, v.Line, v.Value)
			}
		}
	}
	for _, c := range n.Content {
		if err := externalRefs(file, c); err != nil {
			return err
		}
	}
	return nil
}

func firstErr(err error) error {
	if u, ok := err.(interface{ Unwrap() []error }); ok && len(u.Unwrap()) > 0 {
		return u.Unwrap()[0]
	}
	return err
}

// onlyCircular reports whether err lists only circular references, which
// the compiler handles (recursive schemas are legitimate).
func onlyCircular(err error) bool {
	var list []error
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		list = u.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		if e != nil && !strings.Contains(strings.ToLower(e.Error()), "circular") {
			return false
		}
	}
	return true
}
