// Package tenanttest helps a team that embeds Bulkhead prove, in its own
// tests, that its code keeps tenants apart.
//
// # A store for one test
//
// New gives a test a real Bulkhead store: a store.Router over SQLite files
// in t.TempDir(), closed when the test ends. Env.Tenant provisions a
// tenant in an isolation mode and returns a context that carries it, as
// Bulkhead's ingress middleware hands one to a handler:
//
//	env := tenanttest.New(t, tenanttest.Options{})
//	acme := env.Tenant(t, "acme", store.Pooled)      // the shared file
//	globex := env.Tenant(t, "globex", store.Database) // a file of its own
//	svc := notes.New(env.Router)                      // the code under test
//	err := svc.Create(acme, "hello")
//
// SQLite hosts the pooled and database modes (Env.Modes); Postgres gives
// an Env with all three, on a throwaway database of the server named by
// BULKHEAD_TEST_POSTGRES, and skips the test when it is unset.
//
// # Your own tables
//
// Options.Migrations are the team's migrations, loaded from the same
// fs.FS the service embeds (Migrations loads them). Each database-mode
// tenant gets them when Env.Tenant provisions it, through the SQLite
// backend's own applier, so sqlite.Tx and sqlite.ReadTx find the tables:
//
//	env := tenanttest.New(t, tenanttest.Options{
//		Migrations: tenanttest.Migrations(t, migrationsFS, "migrations"),
//	})
//	ctx := env.Tenant(t, "acme", store.Database)
//	err := sqlite.Tx(ctx, env.Router, func(tx *sql.Tx) error { ... })
//
// # Proving isolation
//
// Isolated runs the same code as two new tenants, A and B, and fails the
// test if B can see or change what A wrote: B's reads must not change when
// A writes, and neither B's attempts on A's data (Probe.Tamper) nor B's
// own write of the same thing may change what A reads. It catches the
// leaks a store cannot: a cache keyed without the tenant, a side table in
// a shared file, a uniqueness check across tenants.
//
//	tenanttest.Isolated(t, env, tenanttest.Probe{
//		Write: func(ctx context.Context) error { return svc.Create(ctx, "secret") },
//		Read:  func(ctx context.Context) (any, error) { return svc.Titles(ctx) },
//	})
//
// IsolatedBetween does the same for two tenants the test made itself, on
// any store — a service's own router and catalog, say.
//
// # Through the handlers
//
// Env.Authenticator gives a gate in front of the service's handlers that
// admits the Env's tenants: the token is the tenant's id, which Token
// reads from a context Env.Tenant or Isolated made. A probe can then
// drive the real handlers, gate and policy included:
//
//	gate, err := ingress.New(ingress.Config{Authenticator: env.Authenticator("writer")})
//	api := svc.Handler(env.Router, gate)
//	Read: func(ctx context.Context) (any, error) {
//		req := httptest.NewRequest("GET", "/notes", nil)
//		req.Header.Set("Authorization", "Bearer "+tenanttest.Token(ctx))
//		rec := httptest.NewRecorder()
//		api.ServeHTTP(rec, req)
//		return rec.Body.String(), nil
//	},
//
// # Placement errors
//
// Placements is a fake of the placement source a Router asks (the catalog
// in production), with a function field to answer as the test needs. Pass
// it as Options.Placements, falling back to Env.Placement for the rest, to
// see what the code does when the catalog fails.
package tenanttest
