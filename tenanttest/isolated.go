package tenanttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Probe is the code Isolated runs as two tenants: the team's own handler,
// service method or SQL, called with a context that carries the tenant.
type Probe struct {
	// Write stores something as the tenant in ctx, for example a handler
	// that creates a note. It must succeed for a new tenant, and it must
	// change what Read returns for that tenant (or the check would prove
	// nothing).
	Write func(ctx context.Context) error
	// Read returns what the tenant in ctx can see: a list, a count, one
	// object by the id Write used. Both the value and the error are the
	// observation — "not found" is a fine answer — compared with
	// reflect.DeepEqual and the error's text, so return values that do not
	// change on their own (no fresh timestamps or random ids of reads).
	Read func(ctx context.Context) (any, error)
	// Tamper, if set, is what another tenant might try against the first
	// one's data: delete or update by the id Write used, for example. Its
	// error is ignored — refusing is fine — but it must leave what the
	// first tenant reads unchanged.
	Tamper func(ctx context.Context) error
}

// Isolated runs p as two new tenants A and B in each of modes (every mode
// of env when none is given: pooled and database on SQLite) and fails t if
// B can see or change what A wrote:
//
//  1. A and B read; A writes; A must now read something else.
//  2. B reads again and must see exactly what it saw before A wrote.
//  3. B tampers (if p.Tamper is set); A must read what it read after its
//     write.
//  4. B runs the same Write, which must succeed as it did for A; A must
//     still read the same.
//
// The tenants are named isolated-N-a and isolated-N-b, N counting up in
// the Env, so a probe may share state across calls — that is what it
// looks for — but must not expect fixed tenant names. A mode that fails is
// the last one checked: a leak's state would muddle the next mode's report.
// Code that runs only in some modes (own SQL runs on SQLite only in
// database mode) names them:
//
//	tenanttest.Isolated(t, env, probe, store.Database)
func Isolated(t testing.TB, env *Env, p Probe, modes ...store.Mode) {
	t.Helper()
	if len(modes) == 0 {
		modes = env.modes
	}
	for _, mode := range modes {
		env.mu.Lock()
		env.isoNext++
		n := env.isoNext
		env.mu.Unlock()
		a := env.Tenant(t, fmt.Sprintf("isolated-%d-a", n), mode)
		b := env.Tenant(t, fmt.Sprintf("isolated-%d-b", n), mode)
		if !isolated(t, a, b, p, string(mode)+" mode: ") {
			return // the code's state may carry the leak into the next mode: the first report is the clear one
		}
	}
}

// IsolatedBetween is Isolated for two tenants the test made itself, in any
// mode or on any store: ctxA and ctxB carry them (tenant.WithID). Both
// must be new — nothing written yet — and distinct.
func IsolatedBetween(t testing.TB, ctxA, ctxB context.Context, p Probe) {
	t.Helper()
	isolated(t, ctxA, ctxB, p, "")
}

// isolated runs the check and reports whether it passed.
func isolated(t testing.TB, ctxA, ctxB context.Context, p Probe, prefix string) (ok bool) {
	t.Helper()
	if p.Write == nil || p.Read == nil {
		t.Fatalf("tenanttest: %sa Probe needs Write and Read", prefix)
	}
	a, errA := tenant.FromContext(ctxA)
	b, errB := tenant.FromContext(ctxB)
	switch {
	case errA != nil || errB != nil:
		t.Fatalf("tenanttest: %sboth contexts must carry a tenant (tenant.WithID): %v", prefix, errors.Join(errA, errB))
	case a == b:
		t.Fatalf("tenanttest: %sA and B are the same tenant %s", prefix, a)
	}
	ok = true
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("tenanttest: "+prefix+format, args...)
		ok = false
	}
	read := func(ctx context.Context) observation {
		v, err := p.Read(ctx)
		return observation{v: v, err: err}
	}

	a0, b0 := read(ctxA), read(ctxB)
	if err := p.Write(ctxA); err != nil {
		t.Fatalf("tenanttest: %sWrite as A (%s): %v%s", prefix, a, err, modeHint(err))
	}
	a1 := read(ctxA)
	if a1.equal(a0) {
		t.Fatalf("tenanttest: %sWrite as A (%s) changed nothing A's Read sees (%s), so the probe cannot tell "+
			"whether B sees it: make Read return what Write stored", prefix, a, a1)
	}
	if b1 := read(ctxB); !b1.equal(b0) {
		fail("B (%s) sees what A (%s) wrote: B read %s before A's Write and %s after", b, a, b0, b1)
	}
	if p.Tamper != nil {
		if err := p.Tamper(ctxB); err != nil {
			t.Logf("tenanttest: %sTamper as B (%s) failed, as it may: %v", prefix, b, err)
		}
		if a2 := read(ctxA); !a2.equal(a1) {
			fail("B (%s) changed what A (%s) wrote: A read %s after its Write and %s after B's Tamper", b, a, a1, a2)
			a1 = a2 // what B's Write does next is another finding
		}
	}
	if err := p.Write(ctxB); err != nil {
		fail("the Write that succeeded as A (%s) fails as B (%s), so B can tell what A wrote: %v", a, b, err)
	}
	if a3 := read(ctxA); !a3.equal(a1) {
		fail("B (%s) changed what A (%s) sees by running the same Write: A read %s after its own Write and %s after B's",
			b, a, a1, a3)
	}
	return ok
}

// modeHint explains a Write refused because of the tenant's mode.
func modeHint(err error) string {
	if errors.Is(err, store.ErrIsolationUnsupported) {
		return " (pass the modes the code runs in, e.g. tenanttest.Isolated(t, env, probe, store.Database))"
	}
	return ""
}

// observation is what one Read returned.
type observation struct {
	v   any
	err error
}

func (o observation) equal(p observation) bool {
	if (o.err == nil) != (p.err == nil) || o.err != nil && o.err.Error() != p.err.Error() {
		return false
	}
	if reflect.DeepEqual(o.v, p.v) {
		return true
	}
	// A nil slice or map and an empty one read the same.
	v, w := reflect.ValueOf(o.v), reflect.ValueOf(p.v)
	return v.IsValid() && w.IsValid() && v.Type() == w.Type() &&
		(v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0 && w.Len() == 0
}

// String shows the observation in a failure message, bounded.
func (o observation) String() string {
	s := show(o.v)
	if o.err != nil {
		s = fmt.Sprintf("error %q", o.err.Error())
		if o.v != nil && !reflect.ValueOf(o.v).IsZero() {
			s = show(o.v) + " and " + s
		}
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// show formats a value Read returned as Go syntax, bytes (JSON) as text.
func show(v any) string {
	switch b := v.(type) {
	case []byte:
		return fmt.Sprintf("%q", b)
	case json.RawMessage:
		return fmt.Sprintf("%q", []byte(b))
	}
	return fmt.Sprintf("%#v", v)
}
