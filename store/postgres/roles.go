package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
)

// roleFix tells an operator how to fix an unsafe serving role.
const roleFix = `connect the serving URL as a role that is not superuser, has no BYPASSRLS and owns no Bulkhead table, e.g. ` +
	`CREATE ROLE bulkhead_app LOGIN NOSUPERUSER NOBYPASSRLS; run DDL with the owner role on the admin URL, ` +
	`which grants bulkhead_app what it needs (see "PostgreSQL roles" in the README)`

// CheckServingRole checks that row-level security holds for the serving
// role: it is not superuser, has no BYPASSRLS, is neither the owner nor a
// member of the owner of any table in the schemas the admin role owns, and
// every pooled table with a tenant_id column has row-level security enabled
// and forced. Otherwise it returns an error wrapping ErrUnsafeServingRole
// that says how to fix it. The result also decides whether Begin serves
// pooled tenants (it refuses them while the check fails); Open runs it once.
func (b *Backend) CheckServingRole(ctx context.Context) error {
	problems, err := b.roleProblems(ctx)
	if err != nil {
		return fmt.Errorf("postgres: check serving role: %w", err)
	}
	var unsafe error
	if len(problems) > 0 {
		unsafe = fmt.Errorf("%w %q on shard %s: %s; %s", ErrUnsafeServingRole, b.role, b.shard.Name,
			strings.Join(problems, "; "), roleFix)
	}
	b.mu.Lock()
	b.roleErr = unsafe
	b.mu.Unlock()
	return unsafe
}

func (b *Backend) roleProblems(ctx context.Context) ([]string, error) {
	var problems []string
	var super, bypass bool
	if err := b.serve.QueryRow(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&super, &bypass); err != nil {
		return nil, err
	}
	if super {
		problems = append(problems, "it is a superuser")
	}
	if bypass {
		problems = append(problems, "it has BYPASSRLS")
	}
	rows, err := b.serve.Query(ctx, `SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND pg_has_role(current_user, c.relowner, 'MEMBER')
		  AND (n.nspname = $1 OR n.nspowner = (SELECT nspowner FROM pg_namespace WHERE nspname = $1))
		ORDER BY 1, 2 LIMIT 5`, pooledSchema)
	if err != nil {
		return nil, err
	}
	owned, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s, t, o string
		err := r.Scan(&s, &t, &o)
		return fmt.Sprintf("%s (owner %s)", ident(s, t), o), err
	})
	if err != nil {
		return nil, err
	}
	if len(owned) > 0 {
		problems = append(problems, "it owns or is a member of the owner of "+strings.Join(owned, ", "))
	}
	rows, err = b.serve.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		ORDER BY 1 LIMIT 5`, pooledSchema)
	if err != nil {
		return nil, err
	}
	unforced, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if len(unforced) > 0 {
		problems = append(problems, "row-level security is not enabled and forced on "+strings.Join(unforced, ", ")+
			" (restart with the admin URL, or run bulkhead migrate up, to repair)")
	}
	return problems, nil
}

// table is a row of sqlTables.
type table struct {
	name                          string
	tenantID, rls, force          bool
	policy, guard, servingGranted bool
}

func scanTable(rows interface{ Scan(...any) error }) (table, error) {
	var t table
	err := rows.Scan(&t.name, &t.tenantID, &t.rls, &t.force, &t.policy, &t.guard, &t.servingGranted)
	return t, err
}

// secure gives every table of unit schema s what the tenancy contract asks
// for, doing only what is missing: tables with a tenant_id column get
// row-level security enabled and forced, the tenant policies, and DML for
// the serving role; in schema and database mode every other table of the
// unit gets DML too (the schema is the tenant's), while in pooled mode a
// table without tenant_id stays out of the serving role's reach.
func (b *Backend) secure(ctx context.Context, tx pgx.Tx, s string, mode store.Mode, sequences bool) error {
	rows, err := tx.Query(ctx, sqlTables, s, b.role)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) { return scanTable(r) })
	if err != nil {
		return err
	}
	role := ident(b.role)
	var stmts []string
	for _, t := range tables {
		q := ident(s, t.name)
		if t.tenantID {
			if !t.rls {
				stmts = append(stmts, `ALTER TABLE `+q+` ENABLE ROW LEVEL SECURITY`)
			}
			if !t.force {
				stmts = append(stmts, `ALTER TABLE `+q+` FORCE ROW LEVEL SECURITY`)
			}
			if !t.policy {
				stmts = append(stmts, `CREATE POLICY `+policyName+` ON `+q+` AS PERMISSIVE FOR ALL USING (`+tenantCheck+`) WITH CHECK (`+tenantCheck+`)`)
			}
			if !t.guard {
				stmts = append(stmts, `CREATE POLICY `+guardName+` ON `+q+` AS RESTRICTIVE FOR ALL USING (`+tenantCheck+`) WITH CHECK (`+tenantCheck+`)`)
			}
		}
		if !t.servingGranted && (t.tenantID || mode != store.Pooled) {
			stmts = append(stmts, `GRANT SELECT, INSERT, UPDATE, DELETE ON `+q+` TO `+role)
		}
	}
	if sequences {
		stmts = append(stmts, `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA `+ident(s)+` TO `+role)
	}
	if len(stmts) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, strings.Join(stmts, ";\n"))
	return err
}
