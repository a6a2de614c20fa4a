package keys_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestSQLStoreOnPostgres: the key store and the keyring check on
// PostgreSQL, as the server uses them with a PostgreSQL catalog.
func TestSQLStoreOnPostgres(t *testing.T) {
	if os.Getenv("BULKHEAD_TEST_POSTGRES") == "" {
		t.Skip("set BULKHEAD_TEST_POSTGRES to a PostgreSQL superuser URL to run this test")
	}
	env := pgtest.New(t)
	db, err := sql.Open("pgx", env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	st, err := keys.OpenSQLStore(ctx, db, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.OpenSQLStore(ctx, db, true); err != nil { // again: idempotent
		t.Fatal(err)
	}
	f := newFixture(t)
	m, err := keys.New(keys.Config{KMS: f.ring, KEKURI: f.ring.URI(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckKeyring(ctx); err != nil {
		t.Fatal(err)
	}
	s := sealer(t, m, "acme")
	ct, _ := s.Seal("docs", "r1", []byte(`{"x":1}`))
	if _, err := m.Rotate(ctx, tenant.MustParse("acme")); err != nil {
		t.Fatal(err)
	}
	if _, err := sealer(t, m, "acme").Open("docs", "r1", ct); err != nil {
		t.Fatal(err)
	}
	if ids, err := st.Tenants(ctx, "", 10); err != nil || len(ids) != 1 || ids[0].String() != "acme" {
		t.Fatalf("tenants: %v %v", ids, err)
	}
	// The serving role (what tenant transactions and a team's own SQL run
	// as) cannot read the wrapped keysets.
	serve, err := sql.Open("pgx", env.ServeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer serve.Close()
	var n int
	if err := serve.QueryRowContext(ctx, `SELECT count(*) FROM bulkhead_keys.tenant_keysets`).Scan(&n); err == nil {
		t.Fatalf("the serving role read the key store (%d rows)", n)
	}
	// Another keyring over the same store is refused at the check.
	other := newFixture(t)
	m2, err := keys.New(keys.Config{KMS: other.ring, KEKURI: other.ring.URI(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.CheckKeyring(ctx); !errors.Is(err, keys.ErrWrongKeyring) {
		t.Fatalf("another keyring: %v", err)
	}
	if names, err := m.Destroy(ctx, tenant.MustParse("acme")); err != nil || len(names) != 4 {
		t.Fatalf("destroy: %v %v", names, err)
	}
	if _, err := st.Load(ctx, tenant.MustParse("acme")); !errors.Is(err, keys.ErrNoKeys) {
		t.Fatalf("after destroy: %v", err)
	}
}
