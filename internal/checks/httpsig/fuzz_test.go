package httpsig

import (
	"net/http"
	"testing"
)

func FuzzParseSignatureHeaders(f *testing.F) {
	f.Add(`sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`,
		`sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`)
	f.Add(`s=("x-dict";key="a" "h";bs "@query");created=1;expires=2;nonce="n";alg="ed25519";tag="t"`, `s=:AA==:`)
	f.Add(`s=("@status");created=-1`, `s=:AA==:, t=?1`)
	f.Add(`s=(`, `s=:`)
	f.Add(`a=1, b=("x";bs;key="k")`, `a=:AA==:, b=:AAAA:`)
	r, _ := http.NewRequest("POST", "https://example.com/foo?a=b", nil)
	r.Header.Set("X-Dict", "a=1, b=(1 2)")
	r.Header.Set("H", "v")
	m := requestMessage(r)
	f.Fuzz(func(t *testing.T, input, sig string) {
		sigs, err := parseSignatures([]string{input}, []string{sig})
		if err != nil {
			return
		}
		for i := range sigs {
			s := &sigs[i]
			s.covers("@method")
			base, err := signatureBase(m, s)
			if err == nil && len(base) == 0 {
				t.Fatal("empty base without error")
			}
		}
	})
}
