package storetest

import (
	"testing"

	"github.com/bulkhead-dev/bulkhead/store"
)

// NewMixedEnv returns an Env whose Router has every backend of shards under
// its name, and whose new tenants are placed at places in turn (Env.Tenant):
// tenants in several modes and on several shards behind one Router, as a
// real fleet has them. Env.Backend and Env.Mode are unset. The Router, and
// with it every backend, is closed when tb's test ends.
func NewMixedEnv(tb testing.TB, shards map[string]store.Backend, places []store.Placement) *Env {
	tb.Helper()
	if len(places) == 0 {
		tb.Fatal("storetest: a mixed Env needs at least one placement")
	}
	e := newEnv(shards)
	e.places = append([]store.Placement(nil), places...)
	e.newRouter(tb)
	for _, p := range places {
		if err := e.Router.Supports(p); err != nil {
			tb.Fatalf("placement %v: %v", p, err)
		}
	}
	return e
}

// RunMixed runs the isolation property test, and with own set the own-SQL
// isolation and attack cases, across Envs that newEnv makes (NewMixedEnv):
// tenants of every placement share one Router while they are checked
// against the model and attack each other. Own SQL is expected on the
// placements whose mode is in own.Modes and refused on the others.
func RunMixed(t *testing.T, newEnv func(t *testing.T) *Env, own *OwnSQL) {
	t.Helper()
	tests := []envTest{{"IsolationPropertyAcrossModesAndShards", testIsolationProperty}}
	if own != nil {
		tests = append(tests,
			envTest{"OwnSQLTenantsSeeOnlyTheirOwnRowsAcrossModesAndShards", own.testModel},
			envTest{"AttacksAcrossModesAndShardsSeeAndChangeNothing", own.testAttacksMixed})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newEnv(t))
		})
	}
}

// envTest is one case of a suite: a sentence name and a test over an Env.
type envTest struct {
	name string
	fn   func(*testing.T, *Env)
}

// tenantNames returns n distinct tenant names.
func tenantNames(n int) []string {
	base := []string{"alpha", "bravo", "charlie-3", "delta", "echo", "foxtrot", "golf", "hotel-9", "india", "juliett"}
	names := append([]string(nil), base[:min(n, len(base))]...)
	for i := len(names); i < n; i++ {
		names = append(names, "tenant-"+string(rune('a'+i/26))+string(rune('a'+i%26)))
	}
	return names
}
