// Package corazaproxy is the baseline apiguard's WAF is measured against: a
// plain Go reverse proxy running Coraza with the OWASP CRS (paranoia level
// 1, anomaly threshold 5) on every request, the conventional way (Coraza's
// own HTTP middleware and body processors).
package corazaproxy

import (
	"net/http"
	"net/http/httputil"
	"net/url"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"
)

// Directives load the recommended Coraza config and CRS with blocking on.
const Directives = `
Include @coraza.conf-recommended
Include @crs-setup.conf.example
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
Include @owasp_crs/*.conf
`

// New returns the proxy to upstream.
func New(upstream *url.URL) (http.Handler, error) {
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(Directives))
	if err != nil {
		return nil, err
	}
	return txhttp.WrapHandler(waf, httputil.NewSingleHostReverseProxy(upstream)), nil
}
