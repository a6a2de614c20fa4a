package main

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// flagHint says which flag fixes err, for library errors that describe the
// problem in the library's own terms (its Options and URLs); "" when none
// applies.
func flagHint(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "42501" { // insufficient_privilege
		return "--postgres-admin (and each --shard-admin) must be the URL of the role that owns the database"
	}
	return ""
}
