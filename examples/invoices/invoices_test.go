package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
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

func TestTenantsSeeOnlyTheirOwnInvoicesInEveryMode(t *testing.T) {
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
	for id, tok := range tokens {
		for i := 0; i < 2; i++ {
			code, body := call(t, srv, "POST", tok, fmt.Sprintf(`{"customer":"%s-customer-%d","amount_cents":%d}`, id, i, 100+i))
			if code != http.StatusCreated {
				t.Fatalf("%s: create = %d %s", id, code, body)
			}
		}
	}
	for id, tok := range tokens {
		code, body := call(t, srv, "GET", tok, "")
		if code != http.StatusOK {
			t.Fatalf("%s: list = %d %s", id, code, body)
		}
		var out struct{ Items []Invoice }
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Items) != 2 {
			t.Errorf("%s sees %d invoices, want its own 2: %s", id, len(out.Items), body)
		}
		for _, inv := range out.Items {
			if !strings.HasPrefix(inv.Customer, id+"-customer-") {
				t.Errorf("%s sees another tenant's invoice %+v", id, inv)
			}
		}
	}

	t.Run("the body cannot name a tenant", func(t *testing.T) {
		code, _ := call(t, srv, "POST", tokens["pool-a"], `{"customer":"x","amount_cents":1,"tenant_id":"pool-b"}`)
		if code != http.StatusBadRequest {
			t.Fatalf("a body with tenant_id got %d, want 400", code)
		}
	})
	t.Run("no credential, no tenant", func(t *testing.T) {
		if code, _ := call(t, srv, "GET", "", ""); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d, want 401", code)
		}
		if code, _ := call(t, srv, "GET", "bk_nope_nope", ""); code != http.StatusUnauthorized {
			t.Fatalf("bad token: %d, want 401", code)
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
