package tenanttest

import (
	"context"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// PostgresEnvVar names the environment variable Postgres reads: the URL of
// a PostgreSQL server and a role that may create roles and databases, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
const PostgresEnvVar = pgtest.EnvVar

// Postgres returns an Env on PostgreSQL, with all three isolation modes:
// a throwaway database, an owner role and a serving role (no superuser, no
// BYPASSRLS) made on the server PostgresEnvVar names, dropped with every
// tenant database when t's test ends. Without PostgresEnvVar set it skips
// t, with a message that names the variable.
//
// The serving role is checked as production checks it
// (postgres.Backend.CheckServingRole), so the Env's row-level security is
// the real one.
func Postgres(t testing.TB, opts Options) *Env {
	t.Helper()
	if err := migrate.Check(opts.Migrations); err != nil {
		t.Fatalf("tenanttest: Options.Migrations: %v", err)
	}
	pg := pgtest.New(t) // skips without PostgresEnvVar
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	be, err := postgres.Open(ctx, postgres.Shard{Name: Shard, URL: pg.ServeURL, AdminURL: pg.AdminURL},
		postgres.Options{Migrations: opts.Migrations, DatabasePrefix: pg.Prefix, MaxConns: 4})
	if err != nil {
		t.Fatalf("tenanttest: open PostgreSQL: %v", err)
	}
	if err := be.CheckServingRole(ctx); err != nil {
		_ = be.Close()
		t.Fatalf("tenanttest: %v", err)
	}
	return newEnv(t, be, opts)
}
