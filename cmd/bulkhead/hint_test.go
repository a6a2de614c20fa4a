package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
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
