package lenient

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestQueryUnescape(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"plain", "plain", true},
		{"a+b", "a b", true},
		{"%24ne", "$ne", true},
		{"%2", "%2", false},
		{"100%", "100%", false},
		{"%zz%41", "%zzA", false},
		{"%e6%97%a5", "日", true},
	} {
		got, ok := QueryUnescape(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
		// Where the standard library succeeds, both agree.
		if std, err := url.QueryUnescape(tc.in); err == nil && std != got {
			t.Errorf("%q: %q, net/url %q", tc.in, got, std)
		}
	}
	if got := PercentDecode("a+%41%"); got != "a+A%" {
		t.Errorf("PercentDecode: %q", got)
	}
}

func TestSafeName(t *testing.T) {
	if got := SafeName(`a<b>"c"$/`, 96, "/"); got != "a%3Cb%3E%22c%22%24/" {
		t.Errorf("escaped: %q", got)
	}
	if got := SafeName("$ne", 96, "$"); got != "$ne" {
		t.Errorf("keep: %q", got)
	}
	if got := SafeName(strings.Repeat("x", 200), 10, ""); got != strings.Repeat("x", 10)+"..." {
		t.Errorf("truncated: %q", got)
	}
}

func TestSplitPointer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"/a/b", []string{"a", "b"}, true},
		{"/", []string{""}, true},
		{"/a~1b/c~0d", []string{"a/b", "c~d"}, true},
		{"/~01", []string{"~1"}, true},
		{"", nil, false},
		{"a/b", nil, false},
		{"/a~2", nil, false},
		{"/a~", nil, false},
	}
	for _, tc := range tests {
		got, ok := SplitPointer(tc.in)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("SplitPointer(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
