package catalog

import (
	"context"
	"database/sql"
	"fmt"
)

// ListAgents returns every support agent, revoked ones included, oldest
// first: metadata only, since no secret is stored.
func (c *Catalog) ListAgents(ctx context.Context) ([]Agent, error) {
	rows, err := c.query(ctx, c.db, `SELECT id, name, created_at, revoked_at FROM support_agents ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list support agents: %w", err)
	}
	defer rows.Close()
	out := []Agent{}
	for rows.Next() {
		var (
			a       Agent
			created int64
			revoked sql.NullInt64
		)
		if err := rows.Scan(&a.ID, &a.Name, &created, &revoked); err != nil {
			return nil, fmt.Errorf("list support agents: %w", err)
		}
		a.CreatedAt = fromMicros(created)
		if revoked.Valid {
			t := fromMicros(revoked.Int64)
			a.RevokedAt = &t
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
