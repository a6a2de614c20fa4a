package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

func openApp(t *testing.T) *App {
	t.Helper()
	env := pgtest.New(t) // skips without BULKHEAD_TEST_POSTGRES
	app, err := Open(context.Background(), Config{URL: env.ServeURL, AdminURL: env.AdminURL,
		MaxConns: 4, DatabasePrefix: env.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}

func call(t *testing.T, srv *httptest.Server, method, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/invoices", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}

// TestTenantsSeeOnlyTheirOwnInvoicesInEveryMode runs tenanttest's
// isolation check through the service's Handler (gate, policy, handlers)
// over tenanttest's store, with two new tenants in each of pooled, schema
// and database mode: B must not see A's invoice, nor change what A sees by
// naming A in a body, by writing a row with A's tenant_id in its own
// transaction, or by creating the same invoice.
func TestTenantsSeeOnlyTheirOwnInvoicesInEveryMode(t *testing.T) {
	env := tenanttest.Postgres(t, tenanttest.Options{Migrations: tenanttest.Migrations(t, migrationsFS, "migrations")})
	// The Env's tenants are writers at the gate; a token is a tenant's id.
	gate, err := ingress.New(ingress.Config{Authenticator: env.Authenticator("writer")})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer((&App{router: env.Router, gate: gate}).Handler())
	defer api.Close()
	var victim string // A: Write runs as A before B tampers
	tenanttest.Isolated(t, env, tenanttest.Probe{
		Write: func(ctx context.Context) error {
			id, _ := tenant.FromContext(ctx)
			victim = id.String()
			if code, body := call(t, api, "POST", tenanttest.Token(ctx), `{"customer":"Wile E.","amount_cents":1999}`); code != http.StatusCreated {
				return fmt.Errorf("create = %d %s", code, body)
			}
			return nil
		},
		Read: func(ctx context.Context) (any, error) {
			code, body := call(t, api, "GET", tenanttest.Token(ctx), "")
			if code != http.StatusOK {
				return nil, fmt.Errorf("list = %d %s", code, body)
			}
			return body, nil
		},
		Tamper: func(ctx context.Context) error {
			code, body := call(t, api, "POST", tenanttest.Token(ctx), fmt.Sprintf(`{"customer":"forged","amount_cents":1,"tenant_id":%q}`, victim))
			return errors.Join(fmt.Errorf("a body naming A: %d %s", code, body),
				postgres.Tx(ctx, env.Router, func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO invoices (tenant_id, customer, amount_cents) VALUES ($1, 'forged', 1)`, victim)
					return err
				}))
		},
	})
}

// TestTheServiceServesTheKeysTenantInEveryMode runs the service as it is
// wired: tenants created through the fleet, API keys checked by the
// ingress gate, the catalog's tenant states.
func TestTheServiceServesTheKeysTenantInEveryMode(t *testing.T) {
	app := openApp(t)
	ctx := context.Background()
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	tokens := map[string]string{}
	for _, tc := range []struct {
		id   string
		mode store.Mode
	}{
		{"pool-a", store.Pooled}, {"pool-b", store.Pooled},
		{"schema-a", store.Schema}, {"schema-b", store.Schema},
		{"db-a", store.Database}, {"db-b", store.Database},
	} {
		tok, err := app.CreateTenant(ctx, tenant.MustParse(tc.id), tc.mode)
		if err != nil {
			t.Fatalf("create %s: %v", tc.id, err)
		}
		tokens[tc.id] = tok
	}
	t.Run("a key writes to and reads its own tenant", func(t *testing.T) {
		for id, tok := range tokens {
			if code, body := call(t, srv, "POST", tok, fmt.Sprintf(`{"customer":"%s-customer","amount_cents":100}`, id)); code != http.StatusCreated {
				t.Fatalf("%s: create = %d %s", id, code, body)
			}
			var n int
			err := postgres.ReadTx(tenant.WithID(ctx, tenant.MustParse(id)), app.router, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE customer = $1`, id+"-customer").Scan(&n)
			})
			if err != nil || n != 1 {
				t.Fatalf("%s's key created %d invoices in %s (%v), want 1", id, n, id, err)
			}
			if code, body := call(t, srv, "GET", tok, ""); code != http.StatusOK || !strings.Contains(body, id+"-customer") {
				t.Fatalf("%s: list = %d %s", id, code, body)
			}
		}
	})
	t.Run("the body cannot name a tenant", func(t *testing.T) {
		code, _ := call(t, srv, "POST", tokens["pool-a"], `{"customer":"x","amount_cents":1,"tenant_id":"pool-b"}`)
		if code != http.StatusBadRequest {
			t.Fatalf("a body with tenant_id got %d, want 400", code)
		}
	})
	t.Run("no credential, no tenant", func(t *testing.T) {
		for name, tok := range map[string]string{"no token": "", "a bad token": "bk_nope_nope"} {
			if code, body := call(t, srv, "GET", tok, ""); code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) {
				t.Fatalf("%s: %d %s, want 401 unauthenticated", name, code, body)
			}
		}
	})
	t.Run("a suspended tenant's key is refused", func(t *testing.T) {
		if _, err := app.fleet.Suspend(ctx, tenant.MustParse("db-b")); err != nil {
			t.Fatal(err)
		}
		if code, body := call(t, srv, "GET", tokens["db-b"], ""); code != http.StatusForbidden || !strings.Contains(body, `"code":"tenant_suspended"`) {
			t.Fatalf("a suspended tenant's key: %d %s, want 403 tenant_suspended", code, body)
		}
	})
	for _, pair := range [][2]string{{"pool-a", "pool-b"}, {"schema-a", "schema-b"}, {"db-a", "db-b"}} {
		a, b := pair[0], pair[1]
		t.Run("inserting "+b+"'s tenant_id from "+a+"'s transaction fails", func(t *testing.T) {
			err := postgres.Tx(tenant.WithID(ctx, tenant.MustParse(a)), app.router, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO invoices (tenant_id, customer, amount_cents) VALUES ($1, 'forged', 1)`, b)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "row-level security") {
				t.Fatalf("insert with another tenant's id = %v, want a row-level security violation", err)
			}
		})
	}
	t.Run("a transaction without a tenant fails closed", func(t *testing.T) {
		err := postgres.Tx(ctx, app.router, func(pgx.Tx) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tenant.ErrMissing.Error()) {
			t.Fatalf("Tx without a tenant = %v, want tenant.ErrMissing", err)
		}
	})
	t.Run("every placement is at the latest migration", func(t *testing.T) {
		rep, err := app.fleet.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Units.Units) != 5 { // main/pooled + 2 schema + 2 database
			t.Fatalf("units = %+v", rep.Units.Units)
		}
		for _, u := range rep.Units.Units {
			if u.Version != 2 {
				t.Errorf("%s at version %d, want 2", u.Name, u.Version)
			}
		}
		for _, s := range rep.Tenants {
			if s.Version != 2 || s.Pending != 0 {
				t.Errorf("tenant %s: %+v, want version 2", s.ID, s)
			}
		}
	})
}
