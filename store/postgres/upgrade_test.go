package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/store/storetest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Units provisioned before tenant_usage existed are upgraded on their first
// use by a new process: writes, usage (counted from the records already
// there) and quotas work, the new table is secured like the others, and a
// pooled tenant still sees only its own usage row.
func TestUpgradeUnitsWithoutTenantUsage(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	type unit struct {
		name string
		mode store.Mode
		data string // the record written before the upgrade
	}
	units := []unit{
		{"s-acme", store.Schema, `{"n":1}`},
		{"d-acme", store.Database, `{"n":22}`},
		{"p-acme", store.Pooled, `{"n":333}`},
		{"p-globex", store.Pooled, `{"n":4444}`},
	}

	// The old deployment: every unit provisioned, one record each.
	old := open(t, env, Options{MaxConns: 2})
	oe := storetest.NewEnv(t, old, store.Schema)
	for _, u := range units {
		id := tenant.MustParse(u.name)
		p := store.Placement{Mode: u.mode, Shard: storetest.Shard}
		if err := oe.Router.Provision(ctx, id, p); err != nil {
			t.Fatal(err)
		}
		oe.Placements.Set(id, p)
		tctx := tenant.WithID(ctx, id)
		if err := oe.Router.Tx(tctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(tctx, "c", "pre", []byte(u.data), store.IfMatch{})
			return err
		}); err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
	}
	// Take tenant_usage away, as units of an earlier version lack it.
	for _, stmt := range []string{`DROP TABLE t_s_acme.tenant_usage`, `DROP TABLE bulkhead.tenant_usage`} {
		if _, err := old.OperatorPool().Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	dbName := env.Prefix + tenant.MustParse("d-acme").StorageName()
	dropInDB := func() {
		cfg, err := pgx.ParseConfig(env.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Database = dbName
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP TABLE bulkhead.tenant_usage`); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	dropInDB()

	// A new process: a new Backend, with nothing known of any unit.
	b := open(t, env, Options{MaxConns: 2})
	e := storetest.NewEnv(t, b, store.Schema)
	ctxs := make(map[string]context.Context)
	for _, u := range units {
		id := tenant.MustParse(u.name)
		e.Placements.Set(id, store.Placement{Mode: u.mode, Shard: storetest.Shard})
		ctxs[u.name] = tenant.WithID(ctx, id)
	}
	usage := func(name string) store.Usage {
		t.Helper()
		var u store.Usage
		if err := e.Router.ReadTx(ctxs[name], func(tx *store.Tx) error {
			var err error
			u, err = tx.Usage(ctxs[name])
			return err
		}); err != nil {
			t.Fatalf("%s: usage: %v", name, err)
		}
		return u
	}
	put := func(name, id, data string) error {
		return e.Router.Tx(ctxs[name], func(tx *store.Tx) error {
			_, _, err := tx.Put(ctxs[name], "c", id, []byte(data), store.IfMatch{})
			return err
		})
	}
	for i, u := range units {
		if i%2 == 0 { // half of the units' first use is a read of the usage
			if got, want := usage(u.name), (store.Usage{Records: 1, Bytes: int64(len(u.data))}); got != want {
				t.Fatalf("%s: first usage read = %+v, want %+v", u.name, got, want)
			}
		}
		// Concurrent first writers: all of them upgrade or wait for the upgrade.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for w := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[w] = put(u.name, fmt.Sprintf("w%d", w), `{"w":1}`)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("%s: write after the upgrade: %v", u.name, err)
		}
		want := store.Usage{Records: 4, Bytes: int64(len(u.data) + 3*len(`{"w":1}`))}
		if got := usage(u.name); got != want {
			t.Fatalf("%s: usage after the upgrade = %+v, want %+v", u.name, got, want)
		}
		// The quota counts the record from before the upgrade: one more
		// record fits, the next does not.
		e.Quotas.Set(tenant.MustParse(u.name), 5, 0)
		if err := put(u.name, "q1", `{}`); err != nil {
			t.Fatalf("%s: write within the quota: %v", u.name, err)
		}
		var qe *store.QuotaError
		if err := put(u.name, "q2", `{}`); !errors.As(err, &qe) || qe.Resource != "records" || qe.Usage.Records != 5 {
			t.Fatalf("%s: write over the quota = %v, want a records QuotaError at 5", u.name, err)
		}
		if err := put(u.name, "pre", `{}`); err != nil { // no new record: allowed
			t.Fatalf("%s: overwrite at the quota: %v", u.name, err)
		}
	}

	// The new tables are secured as provisioning secures them.
	sup, err := pgx.Connect(ctx, env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(ctx)
	cfg, err := pgx.ParseConfig(env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = dbName
	supDB, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer supDB.Close(ctx)
	for _, c := range []struct {
		conn *pgx.Conn
		rel  string
	}{{sup, "t_s_acme.tenant_usage"}, {sup, "bulkhead.tenant_usage"}, {supDB, "bulkhead.tenant_usage"}} {
		var force, granted bool
		var policies int
		if err := c.conn.QueryRow(ctx, `SELECT relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = $1::regclass),
			has_table_privilege($2, $1::regclass, 'SELECT, INSERT, UPDATE, DELETE')
			FROM pg_class WHERE oid = $1::regclass`, c.rel, env.Serving).Scan(&force, &policies, &granted); err != nil {
			t.Fatal(err)
		}
		if !force || policies != 2 || !granted {
			t.Fatalf("%s after the upgrade: force %v, %d policies, serving role granted %v", c.rel, force, policies, granted)
		}
	}

	// Pooled: the serving role sees the usage row of the tenant it is set
	// to, and no other.
	srv, err := pgx.Connect(ctx, env.ServeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	for _, name := range []string{"p-acme", "p-globex", ""} {
		var seen []string
		err := pgx.BeginFunc(ctx, srv, func(tx pgx.Tx) error {
			if name != "" { // sealed as the backend seals it (seal.go)
				if _, err := tx.Exec(ctx, sqlSeal, b.sealArgs(name, pooledSchema, false)...); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctx, `SELECT tenant_id FROM bulkhead.tenant_usage ORDER BY 1`)
			if err != nil {
				return err
			}
			seen, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{name}; name == "" && len(seen) != 0 || name != "" && strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Fatalf("serving role as %q sees usage rows %v", name, seen)
		}
	}
	if got := usage("p-globex"); got.Records != 5 {
		t.Fatalf("p-globex usage = %+v, want only its own 5 records", got)
	}

	// A unit dropped after its upgrade is an unknown tenant again, and is
	// not brought back.
	e.Offboard(t, "s-acme")
	e.Placements.Set(tenant.MustParse("s-acme"), store.Placement{Mode: store.Schema, Shard: storetest.Shard})
	if err := put("s-acme", "x", `{}`); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("write to a dropped schema tenant = %v, want ErrUnknownTenant", err)
	}
	var back bool
	if err := sup.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 't_s_acme')`).Scan(&back); err != nil || back {
		t.Fatalf("dropped tenant schema exists again: %v, %v", back, err)
	}
	if _, err := b.Begin(ctx, tenant.MustParse("never"), store.Database, true); !errors.Is(err, store.ErrUnknownTenant) {
		t.Fatalf("Begin on a tenant never provisioned = %v, want ErrUnknownTenant", err)
	}
}

// A backend without an admin pool cannot upgrade a unit; it says how to fix
// that rather than failing obscurely.
func TestUpgradeWithoutAdminPoolSaysHowToFix(t *testing.T) {
	b := &Backend{shard: Shard{Name: storetest.Shard}}
	err := b.ensureCurrent(context.Background(), tenant.MustParse("acme"), store.Schema)
	if err == nil || !strings.Contains(err.Error(), "admin URL") || !strings.Contains(err.Error(), "bulkhead migrate up") {
		t.Fatalf("ensureCurrent without an admin pool = %v, want an error naming the admin URL and migrate up", err)
	}
	if err := b.ensureCurrent(context.Background(), tenant.MustParse("acme"), store.Pooled); err != nil {
		t.Fatalf("pooled unit (ensured at Open): %v", err)
	}
}

// Units of versions before the secret tenant setting had policies that
// compared tenant_id with the plain, forgeable bulkhead.tenant. A backend of
// this version replaces them: the pooled unit when it opens, a schema or
// database unit when a process first uses it.
func TestUpgradeReplacesPlainSettingPolicies(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	old := open(t, env, Options{MaxConns: 2, Migrations: teamMigrations})
	oe := storetest.NewEnv(t, old, store.Pooled)
	places := map[string]store.Placement{"p-a": {Mode: store.Pooled, Shard: storetest.Shard}, "p-b": {Mode: store.Pooled, Shard: storetest.Shard},
		"s-a": {Mode: store.Schema, Shard: storetest.Shard}, "d-a": {Mode: store.Database, Shard: storetest.Shard}}
	for name, p := range places {
		id := tenant.MustParse(name)
		if err := oe.Router.Provision(ctx, id, p); err != nil {
			t.Fatal(err)
		}
		oe.Placements.Set(id, p)
		tctx := tenant.WithID(ctx, id)
		if err := Tx(tctx, oe.Router, func(tx pgx.Tx) error {
			_, err := tx.Exec(tctx, `INSERT INTO customers (id, name) VALUES ('c1', $1)`, name)
			return err
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	// Put the old policies back, as the owner: in the shard database...
	plain := `tenant_id = (SELECT current_setting('bulkhead.tenant', true))`
	oldPolicies := func(q func(string) error, schemas ...string) {
		t.Helper()
		for _, s := range schemas {
			for _, table := range []string{"records", "tenant_usage", "customers", "invoices"} {
				for _, p := range []string{policyName, guardName} {
					if err := q(`ALTER POLICY ` + p + ` ON ` + ident(s, table) + ` USING (` + plain + `) WITH CHECK (` + plain + `)`); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	admin, err := pgx.Connect(ctx, env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	exec := func(c *pgx.Conn) func(string) error {
		return func(q string) error { _, err := c.Exec(ctx, q); return err }
	}
	oldPolicies(exec(admin), "bulkhead", tenant.MustParse("s-a").StorageName())
	// ... and in the tenant database.
	cfg, err := pgx.ParseConfig(env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = env.Prefix + tenant.MustParse("d-a").StorageName()
	adminDB, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adminDB.Close(ctx)
	oldPolicies(exec(adminDB), "bulkhead")

	// The new backend: each tenant forges another's name in bulkhead.tenant
	// and sees only itself.
	b := open(t, env, Options{MaxConns: 2, Migrations: teamMigrations})
	e := storetest.NewEnv(t, b, store.Pooled)
	for name, p := range places {
		e.Placements.Set(tenant.MustParse(name), p)
	}
	for name := range places {
		tctx := tenant.WithID(ctx, tenant.MustParse(name))
		var got []string
		err := Tx(tctx, e.Router, func(tx pgx.Tx) error {
			other := "p-b"
			if name == "p-b" {
				other = "p-a"
			}
			if _, err := tx.Exec(tctx, `SELECT set_config('bulkhead.tenant', $1, true)`, other); err != nil {
				return err
			}
			rows, err := tx.Query(tctx, `SELECT name FROM customers`)
			if err != nil {
				return err
			}
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil || !slices.Equal(got, []string{name}) {
			t.Errorf("%s after the upgrade, with the plain setting forged: sees %v, %v", name, got, err)
		}
	}
}
