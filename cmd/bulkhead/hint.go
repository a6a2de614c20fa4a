package main

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/server"
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

// flagErrors restates the errors of server.Options.Validate with the serve
// flags that set each field at fault.
func flagErrors(err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
		var oe *server.OptionError
		if errors.As(e, &oe) {
			out[i] = fmt.Errorf("%s: %w", optionFlag(oe), oe.Err)
		}
	}
	return errors.Join(out...)
}

// optionFlag names the flag that sets the server option e is about.
func optionFlag(e *server.OptionError) string {
	switch e.Field {
	case "PostgresURL":
		return "--postgres"
	case "PostgresAdminURL":
		return "--postgres-admin"
	case "PostgresDatabasePrefix":
		return "--postgres-database-prefix"
	case "PostgresReplicaURL":
		return "--postgres-replica"
	case "ReplicaMaxLag":
		return "--replica-max-lag"
	case "RedisURL":
		return "--redis"
	case "LogRedactPatterns":
		return "--log-redact-patterns"
	case "Shards":
		switch {
		case e.Shard == "":
			return "--shard"
		case e.Replica:
			return "--shard-replica " + e.Shard + "=URL"
		case e.Admin:
			return "--shard-admin " + e.Shard + "=URL"
		}
		return "--shard " + e.Shard + "=URL"
	}
	return "Options." + e.Field
}
