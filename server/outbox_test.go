package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// eventsOf returns the tenant's events read through the router.
func (e *env) eventsOf(id string, after int64) []store.Event {
	e.t.Helper()
	evs, err := e.srv.TenantEvents(context.Background(), tenant.MustParse(id), after)
	if err != nil {
		e.t.Fatalf("events of %s: %v", id, err)
	}
	return evs
}

// eventSetting returns the "events" member of the tenant's GET.
func (e *env) eventSetting(id string) string {
	e.t.Helper()
	r := e.req("GET", "/v1/admin/tenants/"+id, e.op, nil)
	want(e.t, r, 200, "")
	return fmt.Sprint(r.json(e.t)["events"])
}

// TestTenantEventSettings: PATCH {"events":{"data":...}} sets whether the
// tenant's events carry the record's data, for that tenant only and from
// the next write on; the GET shows it; bad bodies are 400 invalid_events
// and change nothing (not the tier sent with them either); a tenant
// deleted and created again starts without it.
func TestTenantEventSettings(t *testing.T) {
	e := newEnv(t)
	acme := e.tenantWithKey("acme", "pooled")
	globex := e.tenantWithKey("globex", "pooled")
	path := "/v1/admin/tenants/acme"
	if got := e.eventSetting("acme"); got != "map[data:false]" {
		t.Fatalf("a new tenant's setting: %s", got)
	}
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", acme, `{"v":1}`), 201, "")

	r := e.req("PATCH", path, e.op, `{"events": {"data": true}}`)
	want(t, r, 200, "")
	if got := fmt.Sprint(r.json(t)["events"]); got != "map[data:true]" {
		t.Fatalf("PATCH answer's events: %s", got)
	}
	for _, body := range []string{
		`{"events": {"data": "yes"}}`,
		`{"events": {"data": 1}}`,
		`{"events": {}}`,
		`{"events": {"data": false, "more": true}}`,
		`{"events": {"Data": false}}`,
		`{"events": null}`,
		`{"events": true}`,
		`{"tier": "enterprise", "events": {"data": null}}`,
	} {
		want(t, e.req("PATCH", path, e.op, body), 400, "invalid_events")
	}
	if got := e.eventSetting("acme"); got != "map[data:true]" {
		t.Fatalf("refused changes changed the setting: %s", got)
	}
	if tier := e.req("GET", path, e.op, nil).json(t)["tier"]; tier != "standard" {
		t.Fatalf("a refused change moved the tier to %v", tier)
	}
	want(t, e.req("PATCH", "/v1/admin/tenants/nobody", e.op, `{"events": {"data": true}}`), 404, "tenant_not_found")
	if got := e.eventSetting("globex"); got != "map[data:false]" {
		t.Fatalf("globex's setting moved with acme's: %s", got)
	}

	want(t, e.req("PUT", "/v1/collections/notes/records/n1", acme, `{"v":2}`), 200, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", globex, `{"v":3}`), 201, "")
	want(t, e.req("DELETE", "/v1/collections/notes/records/n1", acme, nil), 204, "")
	evs := e.eventsOf("acme", 0)
	if len(evs) != 3 || evs[0].Data != nil || string(evs[1].Data) != `{"v":2}` || evs[2].Op != store.OpDelete || evs[2].Data != nil {
		t.Fatalf("acme's events: %+v", evs)
	}
	if g := e.eventsOf("globex", 0); len(g) != 1 || g[0].Data != nil {
		t.Fatalf("globex's events carry data: %+v", g)
	}

	// Turned off: the next event has no data.
	want(t, e.req("PATCH", path, e.op, `{"events": {"data": false}}`), 200, "")
	want(t, e.req("PUT", "/v1/collections/notes/records/n2", acme, `{"v":4}`), 201, "")
	if evs := e.eventsOf("acme", 3); len(evs) != 1 || evs[0].Data != nil {
		t.Fatalf("acme's event after turning data off: %+v", evs)
	}

	// A new incarnation does not inherit it.
	want(t, e.req("PATCH", path, e.op, `{"events": {"data": true}}`), 200, "")
	want(t, e.req("DELETE", path, e.op, nil), 204, "")
	acme = e.tenantWithKey("acme", "pooled")
	if got := e.eventSetting("acme"); got != "map[data:false]" {
		t.Fatalf("the new acme's setting: %s", got)
	}
	want(t, e.req("PUT", "/v1/collections/notes/records/n1", acme, `{"v":5}`), 201, "")
	if evs := e.eventsOf("acme", 0); len(evs) != 1 || evs[0].Seq != 1 || evs[0].Data != nil {
		t.Fatalf("the new acme's events: %+v", evs)
	}
}

// TestEventDataIsSealedInTheOutbox: with encryption on, the data that
// events carry is stored sealed, like the record (no needle in any stored
// event row, nor anywhere in the data directory), and opens when read
// through the router. With encryption off (the control) the rows hold the
// needles, so a scan that finds none means something.
func TestEventDataIsSealedInTheOutbox(t *testing.T) {
	for _, encrypted := range []bool{true, false} {
		for _, mode := range modes {
			t.Run(fmt.Sprintf("encrypted=%v/%s", encrypted, mode), func(t *testing.T) {
				dir := t.TempDir()
				e := newEnvIn(t, dir, server.Options{DisableEncryption: !encrypted})
				id := "vault-" + mode[:2]
				tok := e.tenantWithKey(id, mode)
				want(t, e.req("PATCH", "/v1/admin/tenants/"+id, e.op, `{"events": {"data": true}}`), 200, "")
				writeNeedles(e, tok, id)
				ns := needles(id)

				rows := rawEventData(t, recordFile(dir, id, mode), id)
				if len(rows) < 12 {
					t.Fatalf("%d stored events with data, want at least 12", len(rows))
				}
				for _, data := range rows {
					found := false
					for _, n := range ns {
						found = found || strings.Contains(data, n)
					}
					switch {
					case encrypted && (found || !isSealed(data)):
						t.Errorf("a stored event's data is not sealed: %.120s", data)
					case !encrypted && !found:
						t.Errorf("control: a stored event's data holds no needle: %.120s", data)
					}
				}
				if encrypted {
					found, _ := scanDir(t, dir, ns)
					for _, n := range ns {
						if len(found[n]) > 0 {
							t.Errorf("%q is stored in the clear in %v", n, found[n])
						}
					}
				}
				// Read through the router, the data opens.
				opened := 0
				for _, ev := range e.eventsOf(id, 0) {
					if ev.Data != nil && strings.Contains(string(ev.Data), "zq-needle-value-8812-"+id) {
						opened++
					}
				}
				if opened < 12 {
					t.Fatalf("%d events read back with their data in the clear, want at least 12", opened)
				}
			})
		}
	}
}

// rawEventData reads the data column of a tenant's stored events straight
// from a SQLite records file.
func rawEventData(t *testing.T, path, id string) []string {
	t.Helper()
	db := openSQLite(t, path)
	rows, err := db.Query(`SELECT data FROM tenant_events WHERE tenant_id = ? AND data IS NOT NULL ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		out = append(out, string(d))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServerTrimsOutboxes: the server's trimming keeps each tenant's
// newest EventsMaxCount events; a reader behind it is told the events
// expired.
func TestServerTrimsOutboxes(t *testing.T) {
	e := newEnvIn(t, t.TempDir(), server.Options{EventsMaxCount: 2, EventsTrimInterval: -1})
	acme := e.tenantWithKey("acme", "database")
	globex := e.tenantWithKey("globex", "pooled")
	for i := range 5 {
		want(t, e.req("PUT", fmt.Sprintf("/v1/collections/notes/records/n%d", i), acme, `{}`), 201, "")
	}
	want(t, e.req("PUT", "/v1/collections/notes/records/n0", globex, `{}`), 201, "")
	got, err := e.srv.TrimEvents(context.Background())
	if err != nil || fmt.Sprint(got) != "[{acme 3 <nil>} {globex 0 <nil>}]" {
		t.Fatalf("TrimEvents = %v, %v", got, err)
	}
	if evs := e.eventsOf("acme", 3); len(evs) != 2 || evs[0].Seq != 4 {
		t.Fatalf("acme keeps %+v", evs)
	}
	if _, err := e.srv.TenantEvents(context.Background(), tenant.MustParse("acme"), 0); !errors.Is(err, store.ErrEventsExpired) {
		t.Fatalf("a reader behind the trim: %v", err)
	}
	if len(e.eventsOf("globex", 0)) != 1 {
		t.Fatal("globex lost its event")
	}
}
