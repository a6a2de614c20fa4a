package postgres

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// On the replica, row-level security and the tenant seal hold exactly as
// on the primary: the policies, the sealing function and the secret
// setting's name are replicated, and the serving role is the same role.
func TestReplicaKeepsTenantsApart(t *testing.T) {
	r := newReplicaEnv(t, store.Pooled, false, ReplicaOptions{MaxLag: time.Hour})
	acme, globex := r.e.Tenant(t, "acme"), r.e.Tenant(t, "globex")
	r.put(t, acme, `{"owner":"acme"}`)
	if err := r.e.Router.Tx(acme, func(tx *store.Tx) error {
		_, _, err := tx.Put(acme, "notes", "acme-only", []byte(`{"secret":1}`), store.IfMatch{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.put(t, globex, `{"owner":"globex"}`)
	r.catchUp(t)

	t.Run("through the router, another tenant's records are absent", func(t *testing.T) {
		if got := r.mustGet(t, globex); got != `{"owner":"globex"}` {
			t.Fatalf("globex read %s", got)
		}
		err := r.e.Router.Run(globex, replicaRead, func(tx *store.Tx) error {
			_, err := tx.Get(globex, "notes", "acme-only")
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("globex reading acme's record: %v, want ErrNotFound", err)
			}
			page, err := tx.List(globex, "notes", store.ListOptions{})
			if err != nil {
				return err
			}
			if len(page.Items) != 1 || page.Items[0].ID != "n1" || string(page.Items[0].Data) != `{"owner":"globex"}` {
				t.Errorf("globex lists %+v", page.Items)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := r.reads("replica", ReasonFresh); n != 2 {
			t.Fatalf("replica/fresh = %v, want 2: the attack did not run on the replica (%s)", n, r.counts())
		}
	})

	t.Run("the serving role's own SQL on the replica sees no tenant it cannot name", func(t *testing.T) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, r.rep.ServeURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		count := func() int {
			t.Helper()
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM bulkhead.records`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(); n != 0 {
			t.Fatalf("without a tenant the serving role sees %d records", n)
		}
		if _, err := conn.Exec(ctx, `SELECT set_config('bulkhead.tenant', 'acme', false), set_config('search_path', 'bulkhead', false)`); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Fatalf("with a forged bulkhead.tenant the serving role sees %d records", n)
		}
		var name string
		err = conn.QueryRow(ctx, `SELECT name FROM bulkhead_secret.setting`).Scan(&name)
		if !isCode(err, "42501") { // insufficient_privilege
			t.Fatalf("the serving role read the secret setting's name on the replica: %v", err)
		}

		// The control: with the secret setting (read as superuser), the
		// same SQL sees acme's rows and only those, so the zeros above are
		// row-level security at work, not an empty replica.
		su, _ := url.Parse(r.rep.SuperURL)
		su.Path = "/" + r.pg.DB
		sconn, err := pgx.Connect(ctx, su.String())
		if err != nil {
			t.Fatal(err)
		}
		defer sconn.Close(ctx)
		if err := sconn.QueryRow(ctx, `SELECT name FROM bulkhead_secret.setting`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `SELECT set_config($1, 'bulkhead:acme', false)`, name); err != nil {
			t.Fatal(err)
		}
		var owners []string
		rows, err := conn.Query(ctx, `SELECT DISTINCT tenant_id FROM bulkhead.records`)
		if err != nil {
			t.Fatal(err)
		}
		if owners, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if len(owners) != 1 || owners[0] != "acme" {
			t.Fatalf("sealed for acme, the replica shows the rows of %v", owners)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO bulkhead.records (tenant_id, collection, id, data, version, created_at, updated_at)
			VALUES ('acme', 'notes', 'x', '{}', 1, now(), now())`); !isCode(err, "25006") { // read_only_sql_transaction
			t.Fatalf("a write on the replica: %v", err)
		}
	})
}

// A tenant deleted and created again is a new tenant. A replica that has
// not replayed the deletion still holds the previous incarnation's rows:
// it must not serve the new one until it can vouch for it.
func TestRecreatedTenantIsNotServedItsPreviousIncarnationFromTheReplica(t *testing.T) {
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			r := newReplicaEnv(t, mode, true, ReplicaOptions{MaxLag: time.Hour})
			ctx := r.e.Tenant(t, "acme")
			r.put(t, ctx, `{"incarnation":1}`)
			r.catchUp(t)
			r.rep.Pause(t)
			r.e.Offboard(t, "acme")
			ctx = r.e.Tenant(t, "acme")
			acme := tenant.MustParse("acme")
			r.e.Placements.Born(acme, r.e.Now())
			if data, err := r.get(ctx); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the new acme reads %s, %v: want ErrNotFound", data, err)
			}
			if n := r.reads("primary", ReasonNewTenant); n != 1 {
				t.Fatalf("primary/new_tenant = %v, want 1 (%s)", n, r.counts())
			}
			// The control: a placement that does not say when the tenant
			// began lets the replica serve, and it shows the previous
			// incarnation's record — what the rule above prevents.
			r.e.Placements.Born(acme, time.Time{})
			data, err := r.get(ctx)
			if err != nil || data != `{"incarnation":1}` || r.reads("replica", ReasonFresh) != 1 {
				t.Fatalf("control: %s, %v (replica/fresh %v): the paused replica should still hold the old record", data, err, r.reads("replica", ReasonFresh))
			}
		})
	}
}
