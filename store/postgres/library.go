package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/store"
)

// Tx runs fn in a read-write pgx transaction scoped to the tenant in ctx,
// for a team's own tables, in whatever mode the tenant is placed: the
// tenant setting (bulkhead.tenant, which row-level security compares
// tenant_id with) and search_path (the tenant's unit: "bulkhead" in pooled
// and database mode, the tenant's schema in schema mode) are set local to
// the transaction, so tables are named unqualified. It commits if fn
// returns nil and rolls back otherwise (also when fn panics, re-panicking).
//
// Without a tenant in ctx it fails with tenant.ErrMissing; a tenant placed
// on a shard that is not PostgreSQL gets an error saying so.
func Tx(ctx context.Context, r *store.Router, fn func(pgx.Tx) error) (err error) {
	sc, err := r.Resolve(ctx)
	if err != nil {
		return err
	}
	b, ok := sc.Backend.(*Backend)
	if !ok {
		return fmt.Errorf("postgres: tenant %s is placed on shard %q, whose backend (%T) is not PostgreSQL", sc.Tenant, sc.Placement.Shard, sc.Backend)
	}
	ptx, release, err := b.begin(ctx, sc.Tenant, sc.Placement.Mode, true)
	if err != nil {
		return err
	}
	defer release()
	defer func() {
		if p := recover(); p != nil {
			_ = ptx.Rollback(context.Background())
			panic(p)
		}
	}()
	if err := fn(ptx); err != nil {
		_ = ptx.Rollback(context.Background())
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}
