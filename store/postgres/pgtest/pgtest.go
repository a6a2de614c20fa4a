// Package pgtest gives tests a throwaway PostgreSQL database with the two
// roles Bulkhead expects, on the server named by BULKHEAD_TEST_POSTGRES:
//
//	func TestSomething(t *testing.T) {
//		env := pgtest.New(t) // skips unless BULKHEAD_TEST_POSTGRES is set
//		be, err := postgres.Open(ctx, postgres.Shard{Name: "main", URL: env.ServeURL, AdminURL: env.AdminURL},
//			postgres.Options{DatabasePrefix: env.Prefix, MaxConns: 4})
//		...
//	}
//
// Its database is set up as docs/postgresql.md asks of a shard: PUBLIC may
// not use plpgsql (the owner role may), so the serving role runs no DO
// block. Each Env has its own database and roles with random names, so tests and
// packages run in parallel without colliding, and everything is dropped
// when the test ends: the database, every database the owner role created
// (database-mode tenants), and both roles. BULKHEAD_TEST_POSTGRES must name
// a role that may create roles and databases (e.g. the superuser
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable); Bulkhead
// itself never runs as it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the environment variable holding the URL of the test server.
const EnvVar = "BULKHEAD_TEST_POSTGRES"

// SkipMessage is the message tests skip with when EnvVar is unset.
const SkipMessage = "set " + EnvVar + "=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable to run the PostgreSQL tests"

// Env is one test's PostgreSQL world.
type Env struct {
	// AdminURL logs in as the owner role (LOGIN CREATEDB NOSUPERUSER, owner
	// of DB): Bulkhead's admin URL.
	AdminURL string
	// ServeURL logs in as the serving role (LOGIN NOSUPERUSER NOBYPASSRLS):
	// Bulkhead's serving URL.
	ServeURL string
	// SuperURL is BULKHEAD_TEST_POSTGRES pointed at DB, for tests that need
	// to break things on purpose (make the serving role an owner, say).
	SuperURL string
	// DB is the database's name; Owner and Serving are the roles' names.
	DB, Owner, Serving string
	// Prefix is unique to this Env (bh<hex>_); pass it as
	// postgres.Options.DatabasePrefix so tenant databases do not collide
	// across tests.
	Prefix string
}

// New creates an Env and drops it when t ends. Without EnvVar set it skips
// t with SkipMessage.
func New(t testing.TB) Env {
	t.Helper()
	base := os.Getenv(EnvVar)
	if base == "" {
		t.Skip(SkipMessage)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	tag := "bh" + hex.EncodeToString(b[:])
	var p [16]byte
	_, _ = rand.Read(p[:])
	password := hex.EncodeToString(p[:])
	e := Env{DB: tag, Owner: tag + "_owner", Serving: tag + "_app", Prefix: tag + "_"}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvVar, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	lit := "'" + password + "'" // hex: nothing to escape
	t.Cleanup(func() { drop(t, base, e) })
	for _, stmt := range []string{
		`CREATE ROLE ` + q(e.Owner) + ` LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD ` + lit,
		`CREATE ROLE ` + q(e.Serving) + ` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD ` + lit,
		`CREATE DATABASE ` + q(e.DB) + ` OWNER ` + q(e.Owner),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("pgtest: %s: %v", stmt, err)
		}
	}
	// As a careful operator sets up a shard database: the serving role may
	// run no DO block (see postgres.CheckServingRole).
	dbCfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvVar, err)
	}
	dbCfg.Database = e.DB
	dbConn, err := pgx.ConnectConfig(ctx, dbCfg)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", e.DB, err)
	}
	_, err = dbConn.Exec(ctx, `REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC; GRANT USAGE ON LANGUAGE plpgsql TO `+q(e.Owner))
	_ = dbConn.Close(ctx)
	if err != nil {
		t.Fatalf("pgtest: revoke plpgsql: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvVar, err)
	}
	at := func(user, pass string) string {
		v := *u
		v.Path = "/" + e.DB
		if user != "" {
			v.User = url.UserPassword(user, pass)
		}
		return v.String()
	}
	e.AdminURL = at(e.Owner, password)
	e.ServeURL = at(e.Serving, password)
	e.SuperURL = at("", "")
	return e
}

// drop removes every database the owner role owns (terminating sessions)
// and both roles.
func drop(t testing.TB, base string, e Env) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("pgtest: cleanup: %v", err)
		return
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(ctx, `SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = $1`, e.Owner)
	if err != nil {
		t.Errorf("pgtest: cleanup: %v", err)
		return
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("pgtest: cleanup: %v", err)
		return
	}
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	for _, db := range dbs {
		if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+q(db)+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: cleanup: drop database %s: %v", db, err)
		}
	}
	for _, role := range []string{e.Serving, e.Owner} {
		if _, err := conn.Exec(ctx, `DROP ROLE IF EXISTS `+q(role)); err != nil {
			t.Errorf("pgtest: cleanup: drop role %s: %v", role, err)
		}
	}
}
