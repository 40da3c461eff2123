//go:build libbench

// The library comparison needs kin-openapi's dependencies, which the
// module's go.sum does not list; run it with an alternate module file:
//
//	cp go.mod go.sum /tmp/alt/ && go test -modfile=/tmp/alt/go.mod -mod=mod -tags libbench -bench Library -benchmem ./internal/checks/openapi
package openapi

// Throwaway comparison that chose the validation approach (see doc.go).

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

type libCase struct {
	name string
	body []byte
	ok   bool
}

func libBodies() []libCase {
	valid := orderBody("")
	return []libCase{
		{"valid", valid, true},
		{"note-null", bytes.Replace(valid, []byte(`"note":"please wrap item 0 carefully, thanks a lot"`), []byte(`"note":null`), 1), true},
		{"note-number", bytes.Replace(valid, []byte(`"note":"please wrap item 0 carefully, thanks a lot"`), []byte(`"note":5`), 1), false},
		{"channel-not-const", bytes.Replace(valid, []byte(`"channel":"web"`), []byte(`"channel":"app"`), 1), false},
		{"quantity-too-big", bytes.Replace(valid, []byte(`"quantity":1,`), []byte(`"quantity":1000,`), 1), false},
		{"bad-email", bytes.Replace(valid, []byte(`alice@example.com`), []byte(`not-an-email`), 1), false},
	}
}

func postOrder(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/orders", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func kinSetup(tb testing.TB, spec string) (routers.Router, *openapi3filter.Options) {
	l := openapi3.NewLoader()
	doc, err := l.LoadFromFile(spec)
	if err != nil {
		tb.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return router, &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: false}
}

func kinValidate(router routers.Router, opts *openapi3filter.Options, body []byte) error {
	r := postOrder(body)
	route, params, err := router.FindRoute(r)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts})
}

func pbSetup(tb testing.TB, spec string) validator.Validator {
	b, err := os.ReadFile(spec)
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		tb.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	return v
}

func pbValidate(v validator.Validator, body []byte) error {
	ok, errs := v.ValidateHttpRequest(postOrder(body))
	if ok {
		return nil
	}
	if len(errs) == 0 {
		return fmt.Errorf("invalid")
	}
	return fmt.Errorf("%s", errs[0].Message)
}

var libSpecs = []struct{ name, file string }{{"3.0", "testdata/shop30.yaml"}, {"3.1", "testdata/shop31.yaml"}}

// TestLibraryCorrectness records which library gets the 3.0/3.1 cases right;
// it only logs, since it documents the choice rather than our code.
func TestLibraryCorrectness(t *testing.T) {
	for _, s := range libSpecs {
		kr, ko := kinSetup(t, s.file)
		pv := pbSetup(t, s.file)
		for _, c := range libBodies() {
			if s.name == "3.0" && c.name == "channel-not-const" {
				c.ok = false // enum [web] in 3.0
			}
			ke := kinValidate(kr, ko, c.body)
			pe := pbValidate(pv, c.body)
			t.Logf("%s %-18s want ok=%v  kin ok=%v  pb33f ok=%v  (kin: %v | pb33f: %v)", s.name, c.name, c.ok, ke == nil, pe == nil, ke, pe)
		}
	}
}

func BenchmarkLibraryKin(b *testing.B) {
	for _, s := range libSpecs {
		b.Run(s.name, func(b *testing.B) {
			r, o := kinSetup(b, s.file)
			body := orderBody("")
			b.ReportAllocs()
			for b.Loop() {
				if err := kinValidate(r, o, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLibraryPb33f(b *testing.B) {
	for _, s := range libSpecs {
		b.Run(s.name, func(b *testing.B) {
			v := pbSetup(b, s.file)
			body := orderBody("")
			b.ReportAllocs()
			for b.Loop() {
				if err := pbValidate(v, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
