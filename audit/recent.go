package audit

import (
	"context"
	"fmt"
	"strings"
)

// Recent returns up to limit of the newest entries across every chain
// whose principal is of one of kinds (the part of Principal before ':',
// e.g. "operator", "support"; none: any principal), newest first. limit 0
// means DefaultListLimit; it is capped at MaxListLimit. It reads the
// entries_by_time index backwards, so its cost follows limit and how
// rare those principals are, not the log's size.
func (l *Log) Recent(ctx context.Context, limit int, kinds ...string) ([]Entry, error) {
	switch {
	case limit < 0:
		return nil, fmt.Errorf("recent audit entries: limit %d is negative", limit)
	case limit == 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	var where []string
	args := make([]any, 0, len(kinds)+1)
	for _, k := range kinds {
		if k == "" || strings.ContainsAny(k, ":%_\\") {
			return nil, fmt.Errorf("recent audit entries: principal kind %q is not a plain kind such as \"operator\"", k)
		}
		where = append(where, "principal LIKE ?")
		args = append(args, k+":%")
	}
	query := `SELECT ` + entryColumns + ` FROM entries`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " OR ")
	}
	query += ` ORDER BY time_ns DESC, chain, seq DESC LIMIT ?`
	args = append(args, limit)
	rows, err := l.db.QueryContext(ctx, l.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("recent audit entries: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("recent audit entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recent audit entries: %w", err)
	}
	return out, nil
}
