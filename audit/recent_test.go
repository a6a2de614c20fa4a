package audit

import (
	"context"
	"testing"
)

func TestRecentReturnsNewestPrivilegedEntriesAcrossChains(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		add := func(chain, principal, action string) {
			t.Helper()
			if _, err := b.log.Append(ctx, Entry{Chain: chain, Principal: principal, Action: action, Decision: "allow"}); err != nil {
				t.Fatal(err)
			}
		}
		add(ControlChain, "operator:operator", "tenant.create")  // oldest
		add("acme", "tenant_key:k_1@acme", "record.write")       // not privileged
		add("acme", "support:sam", "record.read")                // act-as, on the tenant's chain
		add(ControlChain, "anonymous", "tenant.list")            // a refused stranger
		add(ControlChain, "operator:operator", "tenant.suspend") // privileged
		add("globex", "tenant_user:u@globex", "collection.list") // not privileged
		add("support", "support:x", "record.list")               // a tenant may be named support

		got, err := b.log.Recent(ctx, 10, "operator", "support")
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range got {
			actions = append(actions, e.Principal+" "+e.Action)
		}
		want := []string{"support:x record.list", "operator:operator tenant.suspend", "support:sam record.read", "operator:operator tenant.create"}
		if len(actions) != len(want) {
			t.Fatalf("Recent = %q, want %q", actions, want)
		}
		for i := range want {
			if actions[i] != want[i] {
				t.Fatalf("Recent = %q, want %q", actions, want)
			}
		}
		two, err := b.log.Recent(ctx, 2, "operator", "support")
		if err != nil || len(two) != 2 || two[1].Action != "tenant.suspend" {
			t.Fatalf("Recent(2) = %+v, %v; want the two newest", two, err)
		}
		if _, err := b.log.Recent(ctx, 5, "oper%"); err == nil {
			t.Fatal("a kind holding a LIKE wildcard was accepted")
		}
	})
}
