package catalog

import (
	"context"
	"database/sql"
	"errors"
	"github.com/bulkhead-dev/bulkhead/internal/sqlrebind"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// dialect is the little that differs between the SQLite and the PostgreSQL
// catalog. Queries are written once, for SQLite (`?` placeholders,
// unqualified table names); q translates them for PostgreSQL.
type dialect struct {
	postgres bool
}

// pgSchema is the PostgreSQL schema that holds the catalog's tables. Tenant
// schemas are named by tenant.StorageName ("t_…"), so they cannot clash.
const pgSchema = "bulkhead_catalog"

// notifyChannel is the LISTEN/NOTIFY channel every catalog change is
// announced on (payload "t:<tenant id>" or "k:<key id>").
const notifyChannel = "bulkhead_catalog"

// rebind qualifies the catalog's tables with pgSchema and numbers placeholders.
var rebind = sqlrebind.New(pgSchema, "tenants", "api_keys", "support_agents",
	"support_grants", "issuers", "tenant_limits", "analysts", "tenant_retention", "tenant_events")

// q returns query in the dialect (see package sqlrebind).
func (d *dialect) q(query string) string {
	if !d.postgres {
		return query
	}
	return rebind.Q(query)
}

// isConstraint reports whether err is a unique-constraint violation.
func (d *dialect) isConstraint(err error) bool {
	if err == nil {
		return false
	}
	if d.postgres {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	}
	return strings.Contains(err.Error(), "constraint failed")
}

// execer is what *sql.DB and *sql.Tx share.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (c *Catalog) exec(ctx context.Context, e execer, query string, args ...any) (sql.Result, error) {
	return e.ExecContext(ctx, c.d.q(query), args...)
}

func (c *Catalog) query(ctx context.Context, e execer, query string, args ...any) (*sql.Rows, error) {
	return e.QueryContext(ctx, c.d.q(query), args...)
}

func (c *Catalog) queryRow(ctx context.Context, e execer, query string, args ...any) *sql.Row {
	return e.QueryRowContext(ctx, c.d.q(query), args...)
}

// notify announces a change to the other instances inside tx, so it is
// delivered if and only if the change commits. SQLite has no other
// instances to tell.
func (c *Catalog) notify(ctx context.Context, tx *sql.Tx, payload string) error {
	if !c.d.postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify('`+notifyChannel+`', $1)`, payload)
	return err
}

// execNotify runs one change and announces it (PostgreSQL: in the same
// transaction).
func (c *Catalog) execNotify(ctx context.Context, payload, query string, args ...any) (sql.Result, error) {
	if !c.d.postgres {
		return c.exec(ctx, c.db, query, args...)
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	res, err := c.exec(ctx, tx, query, args...)
	if err != nil {
		return nil, err
	}
	if err := c.notify(ctx, tx, payload); err != nil {
		return nil, err
	}
	return res, tx.Commit()
}

func tenantPayload(id string) string { return "t:" + id }

func keyPayload(id string) string { return "k:" + id }
