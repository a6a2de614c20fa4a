package server_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/audit"
)

// A tenant's audit, as the tenant sees it, begins with its own creation:
// entries recorded for its id before it existed — a tenant offboarded by a
// version that wrote no closing entry, or through the library alone, or a
// refusal recorded between a deletion and the re-creation — are for
// operators only.
func TestATenantsAuditBeginsWithItsCreation(t *testing.T) {
	e := newEnv(t)
	log, err := audit.OpenSQLite(filepath.Join(e.dir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	// What an earlier tenant "gamma" left on the chain, with no closing entry.
	if _, err := log.Append(context.Background(), audit.Entry{Chain: "gamma", Principal: "tenant_key:oldkey@gamma",
		Action: "key.manage", Resource: "tenant/gamma", Decision: "allow", RequestID: "req-of-the-old-gamma"}); err != nil {
		t.Fatal(err)
	}

	e.createTenant("gamma", "pooled")
	admin, _ := e.createKey("gamma", "admin")
	r := e.req("GET", "/v1/audit?limit=1000", admin, nil)
	want(t, r, 200, "")
	if strings.Contains(string(r.body), "req-of-the-old-gamma") || strings.Contains(string(r.body), "oldkey") {
		t.Errorf("the new gamma sees what was recorded before it existed: %s", r.body)
	}
	if !strings.Contains(string(r.body), `"action":"`+audit.BeginAction+`"`) {
		t.Errorf("the new gamma's audit does not begin with its creation: %s", r.body)
	}
	all := e.auditEntries("gamma")
	if entryWith(all, map[string]string{"request_id": "req-of-the-old-gamma"}) == nil ||
		entryWith(all, map[string]string{"action": audit.BeginAction}) == nil {
		t.Errorf("operators lost part of gamma's chain: %v", all)
	}
	if rep, err := log.Verify(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// Closing the server writes the count of unauthenticated requests of the
// window still open: a burst of junk just before a shutdown leaves its
// trace.
func TestCloseWritesTheOpenFailureCount(t *testing.T) {
	e := newEnv(t)
	for i := range 20 {
		e.req("GET", "/v1/collections/notes/records/n1", "junk-"+strconv.Itoa(i), nil)
	}
	e.close()
	log, err := audit.OpenSQLite(filepath.Join(e.dir, audit.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	es, err := log.List(context.Background(), audit.ControlChain, 0, audit.MaxListLimit)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range es {
		if en.Action == "auth.failures" && strings.HasPrefix(en.Decision, "suppressed:") {
			return
		}
	}
	t.Fatalf("no auth.failures entry after Close: %+v", es)
}
