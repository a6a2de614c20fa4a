package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEventsOnPostgres(t *testing.T) {
	for _, mode := range []string{"pooled", "schema", "database"} {
		t.Run(mode, func(t *testing.T) {
			opts, _ := pgOptions(t)
			opts.EventsCheckInterval, opts.DisableRateLimit = 50*time.Millisecond, true
			e := newEnvIn(t, t.TempDir(), opts)
			acme, globex := e.tenantWithKey("acme", mode), e.tenantWithKey("globex", mode)
			a, _ := e.openStream(acme, "")
			g, _ := e.openStream(globex, "collections=notes")
			for i := range 4 {
				e.write(acme, "notes", fmt.Sprint(i), `{}`)
				e.write(globex, "notes", fmt.Sprint(i), `{}`)
				e.write(globex, "tasks", fmt.Sprint(i), `{}`)
			}
			var pos string
			for i := range 2 {
				ev := a.next(t)
				if ev.ev.Tenant.String() != "acme" || ev.ev.Seq != int64(i+1) {
					t.Fatalf("acme's stream got %s", ev.raw)
				}
				pos = ev.id
			}
			a.close()
			a, _ = e.openStream(acme, "", "Last-Event-ID", pos)
			for i := 2; i < 4; i++ {
				if ev := a.next(t); ev.ev.Tenant.String() != "acme" || ev.ev.Seq != int64(i+1) {
					t.Fatalf("acme's resumed stream got %s, want seq %d", ev.raw, i+1)
				}
			}
			for i := range 4 {
				if ev := g.next(t); ev.ev.Tenant.String() != "globex" || ev.ev.Collection != "notes" || ev.ev.ID != fmt.Sprint(i) {
					t.Fatalf("globex's notes stream got %s", ev.raw)
				}
			}
			_, r := e.openStream(globex, "", "Last-Event-ID", pos)
			want(t, r, 400, "invalid_event_position")
			want(t, e.req("DELETE", "/v1/admin/tenants/acme", e.op, nil), 204, "")
			a.ended(t)
			acme2 := e.tenantWithKey("acme", mode)
			e.write(acme2, "notes", "x", `{}`)
			_, r = e.openStream(acme2, "", "Last-Event-ID", pos)
			want(t, r, 400, "invalid_event_position")
		})
	}
}

// TestEventsReachStreamsOfAnotherInstance: a write through instance A
// reaches a stream open on instance B (same PostgreSQL) by B's poll.
func TestEventsReachStreamsOfAnotherInstance(t *testing.T) {
	opts, _ := pgOptions(t)
	opts.EventsPollInterval, opts.DisableRateLimit = 50*time.Millisecond, true
	dir, dirB := t.TempDir(), t.TempDir()
	a := newEnvIn(t, dir, opts)
	for _, f := range []string{"operator.token", "cursor.key", "keyring"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dirB, f), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	b := newEnvIn(t, dirB, opts)
	tok := a.tenantWithKey("acme", "pooled")
	s, _ := b.openStream(tok, "")
	a.write(tok, "notes", "from-a", `{}`)
	ev := s.next(t)
	if ev.ev.ID != "from-a" || ev.ev.Tenant.String() != "acme" {
		t.Fatalf("B's stream got %s", ev.raw)
	}
	// A position B gave is good on A: both derive the key from cursor.key.
	a.write(tok, "notes", "second", `{}`)
	r, _ := a.openStream(tok, "", "Last-Event-ID", ev.id)
	if got := r.next(t); got.ev.ID != "second" {
		t.Fatalf("A resumed B's position at %s", got.raw)
	}
}
