package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/server"
)

func TestFlagHint(t *testing.T) {
	denied := &pgconn.PgError{Code: "42501", Message: "permission denied for database bulkhead"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a wrapped permission error names the owner-role flags",
			fmt.Errorf("open catalog on postgres: create schema bulkhead_catalog: %w", denied), "--postgres-admin"},
		{"another PostgreSQL error gets no hint", &pgconn.PgError{Code: "42P01"}, ""},
		{"another error gets no hint", errors.New("boom"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := flagHint(tt.err)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("flagHint = %q, want one containing %q", got, tt.want)
			}
		})
	}
}

func TestFlagErrorsNameTheFlagOfEachOption(t *testing.T) {
	pg := "postgres://app@db/bulkhead"
	tests := []struct {
		name string
		opts server.Options
		want []string
	}{
		{"a missing admin URL", server.Options{PostgresURL: pg}, []string{"--postgres-admin: missing"}},
		{"a missing serving URL", server.Options{PostgresAdminURL: pg}, []string{"--postgres: missing"}},
		{"a bad prefix", server.Options{PostgresURL: pg, PostgresAdminURL: pg, PostgresDatabasePrefix: "Bad"}, []string{"--postgres-database-prefix: invalid"}},
		{"two faults at once", server.Options{PostgresURL: "mysql://x/y", PostgresAdminURL: pg,
			Shards: []server.ShardURLs{{Name: "eu", URL: pg}}}, []string{"--postgres: scheme", "--shard-admin eu=URL: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := flagErrors(tt.opts.Validate())
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("got %v, want %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Options.") {
				t.Fatalf("got %v, which still names an Options field", err)
			}
		})
	}
}
