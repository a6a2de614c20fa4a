package telemetry

import (
	"fmt"
	"regexp"
	"strings"
)

// Markers that replace what the Redactor hides. They are stable, so that
// log queries and tests can count redactions by kind.
const (
	// Redacted replaces the value of a sensitive key and each match of a
	// configured pattern.
	Redacted = "[REDACTED]"
	// RedactedToken replaces a Bulkhead token: a tenant API key (bk_),
	// an operator token (bko_), a support agent's (bks_) or an analyst's
	// (bka_), whole or in part.
	RedactedToken = "[REDACTED:token]"
	// RedactedBearer replaces the credential after "Bearer ".
	RedactedBearer = "[REDACTED:bearer]"
	// RedactedJWT replaces a JWT (or any base64url JSON object: eyJ…).
	RedactedJWT = "[REDACTED:jwt]"
	// RedactedEmail replaces an e-mail address.
	RedactedEmail = "[REDACTED:email]"
	// RedactedUserinfo replaces the user and password of a URL
	// (postgres://user:pw@host becomes postgres://[REDACTED:userinfo]@host).
	RedactedUserinfo = "[REDACTED:userinfo]"
)

// Trigger bits: what a string must hold for a built-in rule to match it.
// triggers finds them all in one pass over the string, so that a string
// with none (most of them: ids, routes, names) meets no regexp at all.
const (
	trigAt         uint8 = 1 << iota // '@': e-mail, URL userinfo
	trigEq                           // '=': key=value
	trigUnderscore                   // '_': bk_… tokens
	trigEyJ                          // "eyJ": JWT
	trigBearer                       // "bearer", any case
)

// trigByte marks the bytes triggers looks at.
var trigByte = [256]bool{'@': true, '=': true, '_': true, 'J': true, 'r': true, 'R': true}

// triggers returns the trigger bits of s.
func triggers(s string) uint8 {
	var t uint8
	for i := 0; i < len(s); i++ {
		if !trigByte[s[i]] {
			continue
		}
		switch s[i] {
		case '@':
			t |= trigAt
		case '=':
			t |= trigEq
		case '_':
			t |= trigUnderscore
		case 'J':
			if i >= 2 && s[i-2] == 'e' && s[i-1] == 'y' {
				t |= trigEyJ
			}
		case 'r', 'R':
			if i >= 5 && s[i-5]|0x20 == 'b' && strings.EqualFold(s[i-5:i+1], "bearer") {
				t |= trigBearer
			}
		}
	}
	return t
}

// valueRule is one pattern the Redactor looks for inside strings.
type valueRule struct {
	re   *regexp.Regexp
	repl string // ReplaceAllString template
	// need are the trigger bits re cannot match without; maybe, if not
	// nil, is a further cheap test that is false when re cannot match.
	need  uint8
	maybe func(string) bool
}

func (v *valueRule) apply(s string, t uint8) (string, bool) {
	if t&v.need != v.need || v.maybe != nil && !v.maybe(s) {
		return s, false
	}
	if !v.re.MatchString(s) {
		return s, false
	}
	return v.re.ReplaceAllString(s, v.repl), true
}

// builtinMinLen is the length of the shortest string a built-in rule can
// change ("pwd=x").
const builtinMinLen = 5

// builtinRules are the value patterns that are always on, in the order
// they run: a URL's userinfo before e-mail addresses (pw@host.example.com
// looks like one), the rest in any order.
var builtinRules = []valueRule{
	{
		re:    regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s"'<>]+@`),
		repl:  "${1}" + RedactedUserinfo + "@",
		need:  trigAt,
		maybe: func(s string) bool { return strings.Contains(s, "://") },
	},
	{
		re:   regexp.MustCompile(`(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*`),
		repl: "${1} " + RedactedBearer,
		need: trigBearer,
	},
	{
		// bk_<key id>_<secret>, bks_…, bka_…, bko_<secret>, and any
		// fragment of them long enough to hold part of a secret.
		re:    regexp.MustCompile(`bk[soa]?_[A-Za-z0-9_\-]{6,}`),
		repl:  RedactedToken,
		need:  trigUnderscore,
		maybe: func(s string) bool { return strings.Contains(s, "bk") },
	},
	{
		// A tenant key's or agent's token whose prefix was cut off:
		// <20-character base32 key id>_<secret>.
		re:    regexp.MustCompile(`[a-z2-7]{20}_[A-Za-z0-9_\-]{12,}`),
		repl:  RedactedToken,
		need:  trigUnderscore,
		maybe: hasKeyIDRun,
	},
	{
		// A JWS (3 parts) or JWE (5 parts); a lone base64url JSON header or
		// payload too. "eyJ" is base64url of `{"`.
		re:   regexp.MustCompile(`eyJ[A-Za-z0-9_\-]{4,}=*(?:\.[A-Za-z0-9_\-]*=*){0,4}`),
		repl: RedactedJWT,
		need: trigEyJ,
	},
	{
		// token=…, password=…, client_secret=…, api_key=… in query strings,
		// DSNs and key=value logs.
		re:   regexp.MustCompile(`(?i)\b([A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api_key|apikey|api-key))=([^\s&;,"'<>]+)`),
		repl: "${1}=" + Redacted,
		need: trigEq,
		maybe: func(s string) bool {
			return containsFold(s, "pass") || containsFold(s, "pwd") ||
				containsFold(s, "secret") || containsFold(s, "token") || containsFold(s, "key")
		},
	},
	{
		re:   regexp.MustCompile(`[\p{L}\p{N}._%+\-]+@[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*\.\p{L}{2,}`),
		repl: RedactedEmail,
		need: trigAt,
	},
}

// customRule makes a rule of a configured pattern: its matches become
// Redacted. A pattern with a literal prefix is only tried on strings that
// hold the prefix.
func customRule(re *regexp.Regexp) valueRule {
	r := valueRule{re: re, repl: Redacted}
	if p, _ := re.LiteralPrefix(); p != "" {
		r.maybe = func(s string) bool { return strings.Contains(s, p) }
	}
	return r
}

// CompileRedactPatterns compiles regular expressions (RE2 syntax, as
// package regexp reads them) for RedactOptions.Patterns. The error names
// the pattern that does not compile.
func CompileRedactPatterns(patterns []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(patterns))
	for _, p := range patterns {
		if p == "" {
			return nil, fmt.Errorf("redact pattern: empty pattern (give a regular expression that matches only what must be hidden)")
		}
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("redact pattern %q: %w (use Go's RE2 syntax, e.g. 'acct-[0-9]{8}')", p, err)
		}
		if re.MatchString("") {
			return nil, fmt.Errorf("redact pattern %q matches the empty string, so it would mark every position of every line; make it match at least one character", p)
		}
		out = append(out, re)
	}
	return out, nil
}

// hasKeyIDRun reports whether s has 20 characters of base32 (a-z, 2-7)
// right before a '_', as the key id of a token does.
func hasKeyIDRun(s string) bool {
	for i := 20; i < len(s); i++ {
		if s[i] != '_' {
			continue
		}
		j := i - 1
		for j >= i-20 && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= '2' && s[j] <= '7') {
			j--
		}
		if j < i-20 {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains word (lowercase ASCII), ignoring
// ASCII case. It does not allocate.
func containsFold(s, word string) bool {
	n := len(word)
	first, upper := word[0], word[0]-'a'+'A'
	for i := 0; i+n <= len(s); i++ {
		if c := s[i]; c != first && c != upper {
			continue
		}
		if strings.EqualFold(s[i:i+n], word) {
			return true
		}
	}
	return false
}
