package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
)

// DefaultRedactKeys are the attribute keys whose values a Redactor always
// hides. See RedactOptions.Keys for how a key matches.
var DefaultRedactKeys = []string{
	"authorization", "proxy_authorization", "cookie", "set_cookie",
	"token", "secret", "password", "passwd", "api_key", "apikey",
	"private_key", "credential", "credentials", "jwt",
}

// RedactOptions configures a Redactor. Its defaults (DefaultRedactKeys and
// the built-in value patterns) are always on; the options only add to them.
type RedactOptions struct {
	// Keys are attribute keys, besides DefaultRedactKeys, whose whole
	// value (a string, a number, a group, anything) becomes Redacted. A
	// key matches regardless of case and of '-' versus '_', and also as
	// the last words of a longer key: "token" hides "token",
	// "access_token" and "X-Access-Token", not "token_count" or
	// "operator_token_file". Keys inside groups, nested slog.Group values,
	// LogValuer results and maps or structs logged with slog.Any match
	// too; a group whose own key matches is hidden whole.
	Keys []string
	// Patterns are regular expressions, besides the built-in ones, whose
	// matches in the message and in every string value become Redacted.
	// CompileRedactPatterns compiles them from text. A pattern with a
	// literal prefix ("acct-[0-9]+") costs nothing on strings without it.
	Patterns []*regexp.Regexp
}

// Redactor is a slog.Handler that hides secrets and personal data before
// its inner handler sees a record. It hides the values of sensitive keys
// (DefaultRedactKeys and RedactOptions.Keys) and, in the message and every
// string value, Bulkhead's tokens (RedactedToken), "Bearer" credentials
// (RedactedBearer), JWTs (RedactedJWT), e-mail addresses (RedactedEmail),
// a URL's user and password (RedactedUserinfo), the values of token=,
// password=, secret=, api_key= pairs (Redacted), and the matches of
// RedactOptions.Patterns (Redacted).
//
// A record with nothing to hide reaches the inner handler unchanged and
// without a copy; strings are only handed to a pattern's regexp after a
// cheap test says it could match.
//
// A Redactor cannot hide what no key or pattern names (a tenant's record
// data logged under a plain key, say); Bulkhead's own code logs no record
// data, bodies, paths, queries or headers, and the Redactor is the second
// line of defence.
type Redactor struct {
	inner  slog.Handler
	rules  *redactRules
	hidden bool // inside a group whose key is sensitive: every value is hidden
}

var _ slog.Handler = (*Redactor)(nil)

type redactRules struct {
	keys   map[string]bool // normalized (lowercase, '-' as '_')
	byLast [256][]string   // keys by their last byte
	values []valueRule
	minLen int  // shorter strings hold nothing a value rule looks for
	custom bool // values holds configured patterns
}

// NewRedactor returns a handler that redacts records as Redactor says and
// passes them to inner. Over a *Redactor it returns one Redactor with the
// rules of both (the inner one's and opts) rather than a stack of two;
// attributes the inner one was already given (WithAttrs) keep its rules.
func NewRedactor(inner slog.Handler, opts RedactOptions) *Redactor {
	r := &Redactor{inner: inner}
	var base *redactRules
	if in, ok := inner.(*Redactor); ok {
		r.inner, r.hidden, base = in.inner, in.hidden, in.rules
	}
	rules := &redactRules{keys: map[string]bool{}}
	if base != nil {
		for k := range base.keys {
			rules.keys[k] = true
		}
		rules.values, rules.minLen, rules.custom = slices.Clone(base.values), base.minLen, base.custom
	} else {
		rules.minLen = builtinMinLen
		for _, k := range DefaultRedactKeys {
			rules.keys[normalizeKey(k)] = true
		}
		rules.values = slices.Clone(builtinRules)
	}
	for _, k := range opts.Keys {
		if k = normalizeKey(strings.TrimSpace(k)); k != "" {
			rules.keys[k] = true
		}
	}
	for _, re := range opts.Patterns {
		if re != nil {
			rules.values = append(rules.values, customRule(re))
			rules.minLen, rules.custom = 1, true // a configured pattern may match anything
		}
	}
	for k := range rules.keys {
		c := k[len(k)-1]
		rules.byLast[c] = append(rules.byLast[c], k)
	}
	r.rules = rules
	return r
}

// Enabled reports whether the inner handler handles level.
func (h *Redactor) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle passes r to the inner handler with its message and attributes
// redacted. A record with nothing to hide is passed as it is.
func (h *Redactor) Handle(ctx context.Context, r slog.Record) error {
	msg, changed := h.rules.scrub(r.Message)
	first, firstAttr := -1, slog.Attr{} // the first attribute that changes
	if !changed && !h.hidden {
		i := 0
		r.Attrs(func(a slog.Attr) bool {
			if na, c := h.attr(a, false); c {
				first, firstAttr = i, na
				return false
			}
			i++
			return true
		})
		if first < 0 {
			return h.inner.Handle(ctx, r)
		}
	}
	nr := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	i := 0
	r.Attrs(func(a slog.Attr) bool {
		switch {
		case i == first:
			a = firstAttr
		case i > first: // those before it are unchanged
			a, _ = h.attr(a, h.hidden)
		}
		nr.AddAttrs(a)
		i++
		return true
	})
	return h.inner.Handle(ctx, nr)
}

// WithAttrs redacts attrs once and gives them to the inner handler.
func (h *Redactor) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i], _ = h.attr(a, h.hidden)
	}
	return &Redactor{inner: h.inner.WithAttrs(out), rules: h.rules, hidden: h.hidden}
}

// WithGroup opens a group in the inner handler; if name is a sensitive
// key, every attribute put in the group is hidden.
func (h *Redactor) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Redactor{inner: h.inner.WithGroup(name), rules: h.rules, hidden: h.hidden || h.rules.sensitive(name)}
}

// attr returns a redacted, and whether it differs from a. hidden hides its
// value whatever it is.
func (h *Redactor) attr(a slog.Attr, hidden bool) (slog.Attr, bool) {
	resolved := a.Value.Kind() == slog.KindLogValuer
	if resolved {
		a.Value = a.Value.Resolve()
	}
	if a.Value.Kind() == slog.KindGroup && a.Key == "" && !hidden {
		// An inlined group: its attributes stand for themselves.
		v, changed := h.group(a.Value, false)
		return slog.Attr{Key: a.Key, Value: v}, changed || resolved
	}
	if hidden || h.rules.sensitive(a.Key) {
		return slog.String(a.Key, Redacted), true
	}
	v, changed := h.value(a.Value)
	a.Value = v
	return a, changed || resolved
}

func (h *Redactor) group(v slog.Value, hidden bool) (slog.Value, bool) {
	as := v.Group()
	var out []slog.Attr
	for i, a := range as {
		na, changed := h.attr(a, hidden)
		if changed && out == nil {
			out = make([]slog.Attr, len(as))
			copy(out, as[:i])
		}
		if out != nil {
			out[i] = na
		}
	}
	if out == nil {
		return v, false
	}
	return slog.GroupValue(out...), true
}

func (h *Redactor) value(v slog.Value) (slog.Value, bool) {
	switch v.Kind() {
	case slog.KindString:
		if s, changed := h.rules.scrub(v.String()); changed {
			return slog.StringValue(s), true
		}
	case slog.KindGroup:
		return h.group(v, false)
	case slog.KindAny:
		return h.anyValue(v.Any())
	}
	return v, false
}

// anyValue redacts a value logged with slog.Any: an error's text, a byte
// slice's text, and anything else as the JSON handler would write it (keys
// of maps and structs included), then as fmt's %+v would (the text
// handler's form, which shows unexported fields).
func (h *Redactor) anyValue(x any) (slog.Value, bool) {
	switch x := x.(type) {
	case nil:
		return slog.AnyValue(nil), false
	case error:
		if _, jm := x.(json.Marshaler); !jm {
			if s, changed := h.rules.scrub(x.Error()); changed {
				return slog.StringValue(s), true
			}
			return slog.AnyValue(x), false
		}
	case []byte:
		if s, changed := h.rules.scrub(string(x)); changed {
			return slog.StringValue(s), true
		}
		return slog.AnyValue(x), false
	}
	if b, err := json.Marshal(x); err == nil {
		var tree any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if dec.Decode(&tree) == nil {
			if t, changed := h.tree(tree); changed {
				return slog.AnyValue(t), true
			}
		}
	}
	if s, changed := h.rules.scrub(fmt.Sprintf("%+v", x)); changed {
		return slog.StringValue(s), true
	}
	return slog.AnyValue(x), false
}

// tree redacts a decoded JSON value.
func (h *Redactor) tree(v any) (any, bool) {
	switch v := v.(type) {
	case string:
		return h.rules.scrub(v)
	case map[string]any:
		changed := false
		for k, x := range v {
			if h.rules.sensitive(k) {
				v[k], changed = Redacted, true
				continue
			}
			if nx, c := h.tree(x); c {
				v[k], changed = nx, true
			}
		}
		return v, changed
	case []any:
		changed := false
		for i, x := range v {
			if nx, c := h.tree(x); c {
				v[i], changed = nx, true
			}
		}
		return v, changed
	}
	return v, false
}

// scrub applies every value rule to s.
func (r *redactRules) scrub(s string) (string, bool) {
	if len(s) < r.minLen {
		return s, false
	}
	t := triggers(s)
	if t == 0 && !r.custom {
		return s, false
	}
	changed := false
	for i := range r.values {
		if out, c := r.values[i].apply(s, t); c {
			s, changed = out, true
			t = triggers(s)
		}
	}
	return s, changed
}

// sensitive reports whether key, or its last words ('_', '-', '.' or ' '
// separated), is one of the sensitive keys, ignoring case. It looks only at
// the keys that end in key's last byte, and does not allocate.
func (r *redactRules) sensitive(key string) bool {
	if key == "" {
		return false
	}
	for _, s := range r.byLast[foldKeyByte(key[len(key)-1])] {
		n := len(s)
		if len(key) < n || len(key) > n && foldKeyByte(key[len(key)-n-1]) != '_' {
			continue
		}
		tail, i := key[len(key)-n:], n-1
		for i >= 0 && foldKeyByte(tail[i]) == s[i] {
			i--
		}
		if i < 0 {
			return true
		}
	}
	return false
}

// foldKeyByte lowercases an ASCII letter and makes every separator '_'.
func foldKeyByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '-' || c == '.' || c == ' ':
		return '_'
	}
	return c
}

// normalizeKey lowercases k and turns '-' and '.' into '_'; it allocates
// only when k has something to change.
func normalizeKey(k string) string {
	need := false
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= 'A' && c <= 'Z' || c == '-' || c == '.' || c == ' ' {
			need = true
			break
		}
	}
	if !need {
		return k
	}
	b := []byte(k)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '-' || c == '.' || c == ' ':
			b[i] = '_'
		}
	}
	return string(b)
}
