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
// member of the owner of any table in the schemas the admin role owns, may
// create no object (no CREATE on any schema, no temporary tables: nothing
// it creates can shadow a tenant's table or a function Bulkhead calls), may
// run no DO block (in which SQL could PREPARE a statement in place of one
// Bulkhead prepared on a connection that serves the next tenant), and
// every pooled table with a tenant_id column has row-level security enabled
// and forced. Otherwise it returns an error wrapping ErrUnsafeServingRole
// that says how to fix it. The result also decides whether Begin serves
// pooled and schema tenants, which share connections (it refuses them while
// the check fails); Open runs it once.
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
	var temp bool
	var creatable []string
	if err := b.serve.QueryRow(ctx, `SELECT has_database_privilege(current_user, current_database(), 'TEMP'),
		coalesce((SELECT array_agg(nspname ORDER BY nspname) FROM pg_namespace
			WHERE has_schema_privilege(current_user, oid, 'CREATE') OR pg_has_role(current_user, nspowner, 'MEMBER')), '{}')`).Scan(&temp, &creatable); err != nil {
		return nil, err
	}
	rows, err = b.serve.Query(ctx, `SELECT lanname FROM pg_language
		WHERE laninline <> 0 AND has_language_privilege(current_user, oid, 'USAGE') ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	langs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if len(langs) > 0 {
		problems = append(problems, "it may run DO blocks in "+strings.Join(langs, ", ")+
			", where SQL could PREPARE a statement in place of one Bulkhead prepared on a shared connection "+
			"(as a superuser, in the shard database: REVOKE USAGE ON LANGUAGE "+strings.Join(langs, ", ")+" FROM PUBLIC; "+
			"GRANT USAGE ON LANGUAGE "+strings.Join(langs, ", ")+" TO the owner role)")
	}
	if temp {
		problems = append(problems, "it may create temporary tables and functions, which shadow a tenant's tables for the next transaction on the connection "+
			"(REVOKE TEMPORARY ON DATABASE ... FROM PUBLIC as the database owner; Open does this when the admin role owns the database)")
	}
	if len(creatable) > 0 {
		problems = append(problems, "it may create objects in schema "+strings.Join(creatable, ", ")+" (REVOKE CREATE ON SCHEMA ... FROM PUBLIC)")
	}
	if len(unforced) > 0 {
		problems = append(problems, "row-level security is not enabled and forced on "+strings.Join(unforced, ", ")+
			" (restart with the admin URL, or run bulkhead migrate up, to repair)")
	}
	return problems, nil
}

// table is a row of sqlTables.
type table struct {
	name                  string
	tenantID, rls, force  bool
	policy, guard, sealed bool
	servingGranted        bool
}

func scanTable(rows interface{ Scan(...any) error }) (table, error) {
	var t table
	err := rows.Scan(&t.name, &t.tenantID, &t.rls, &t.force, &t.policy, &t.guard, &t.sealed, &t.servingGranted)
	return t, err
}

// secure gives every table of unit schema s what the tenancy contract asks
// for, doing only what is missing. Tables with a tenant_id column get
// row-level security enabled and forced, with policies that admit only the
// rows of the tenant the transaction is sealed for in this unit (see
// seal.go), and DML for the serving role. In schema and database mode every
// other table of the unit gets the same, with policies that admit only
// transactions sealed for this unit, so no other tenant's transaction can
// read or write it by a qualified name. In pooled mode a table without
// tenant_id stays out of the serving role's reach. Sequences are granted in
// database mode only (the database is the tenant's); elsewhere a sequence
// would be shared with other tenants' SQL, so tables there use identity
// columns, which need no grant. Policies of earlier versions, which
// compared a plain setting, are replaced.
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
		if !t.tenantID && mode == store.Pooled {
			continue
		}
		q := ident(s, t.name)
		check := tenantCheck(s)
		if !t.tenantID {
			check = unitCheck(s)
		}
		if !t.rls {
			stmts = append(stmts, `ALTER TABLE `+q+` ENABLE ROW LEVEL SECURITY`)
		}
		if !t.force {
			stmts = append(stmts, `ALTER TABLE `+q+` FORCE ROW LEVEL SECURITY`)
		}
		// The restrictive policy confines; the permissive one only lets
		// rows through to it (RLS shows nothing without a permissive
		// policy), so a permissive policy a team adds widens nothing and
		// each statement checks the tenant once.
		for _, p := range []struct {
			name, as, check string
			exists          bool
		}{{policyName, "PERMISSIVE", "true", t.policy}, {guardName, "RESTRICTIVE", check, t.guard}} {
			switch {
			case !p.exists:
				stmts = append(stmts, `CREATE POLICY `+p.name+` ON `+q+` AS `+p.as+` FOR ALL USING (`+p.check+`) WITH CHECK (`+p.check+`)`)
			case !t.sealed:
				stmts = append(stmts, `ALTER POLICY `+p.name+` ON `+q+` USING (`+p.check+`) WITH CHECK (`+p.check+`)`)
			}
		}
		if !t.servingGranted {
			stmts = append(stmts, `GRANT SELECT, INSERT, UPDATE, DELETE ON `+q+` TO `+role)
		}
	}
	if sequences && mode == store.Database {
		stmts = append(stmts, `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA `+ident(s)+` TO `+role)
	}
	if len(stmts) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, strings.Join(stmts, ";\n"))
	return err
}
