package goodbot

import (
	"regexp"
	"strings"
	"testing"
)

// The User-Agent is attacker-controlled. Claim must agree with the obvious
// implementation (lower-case, search each bot's patterns in list order).
func FuzzClaim(f *testing.F) {
	for _, s := range []string{googlebotUA, bingbotUA, browserUA, "", "GOOGLEBOT", "bingbot Googlebot", "ÄpplebotÄ", "zz1"} {
		f.Add(s)
	}
	bots := append(DefaultBots(), BotConfig{Name: "re", UserAgentRegex: `(?i)zz\d`, Suffixes: []string{"a.example"}})
	v, err := New(Config{Bots: bots}, world())
	if err != nil {
		f.Fatal(err)
	}
	res := make([]*regexp.Regexp, len(bots))
	for i, b := range bots {
		if b.UserAgentRegex != "" {
			res[i] = regexp.MustCompile(b.UserAgentRegex)
		}
	}
	f.Fuzz(func(t *testing.T, ua string) {
		got := v.Claim(ua)
		head := ua
		if len(head) > maxUA {
			head = head[:maxUA]
		}
		lower := asciiLower(head)
		want := ""
	bots:
		for i, b := range bots {
			for _, p := range b.UserAgents {
				if strings.Contains(lower, strings.ToLower(p)) {
					want = b.Name
					break bots
				}
			}
			if res[i] != nil && res[i].MatchString(head) {
				want = b.Name
				break
			}
		}
		if got != want {
			t.Fatalf("Claim(%q) = %q, want %q", ua, got, want)
		}
	})
}

// asciiLower lowers ASCII letters only, as Claim does (strings.ToLower
// would also fold non-ASCII letters and could change byte lengths).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
