package catalog

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/analytics"
)

// Analysts are principals who may only ask aggregate, noisy questions
// across tenants (package analytics), each with a privacy budget that
// every query spends. Their tokens are bka_<analyst_id>_<secret>; only
// SHA-256(secret) is stored. Like support agents, they are not cached:
// a revocation holds on the next request of every instance.
const analystTokenPrefix = "bka_"

// ErrAnalystNotFound: no such analyst (or it is revoked, where that
// matters).
var ErrAnalystNotFound = errors.New("analyst not found")

// Analyst is an analyst's metadata and budget; the secret is never stored.
type Analyst struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Budget    analytics.Epsilon `json:"budget"`
	Spent     analytics.Epsilon `json:"spent"`
	Remaining analytics.Epsilon `json:"remaining"`
	CreatedAt time.Time         `json:"created_at"`
	RevokedAt *time.Time        `json:"revoked_at,omitempty"`
}

// IsAnalystToken reports whether token has the shape of an analyst token.
func IsAnalystToken(token string) bool { return strings.HasPrefix(token, analystTokenPrefix) }

// CreateAnalyst registers an analyst with a privacy budget (at least 0)
// and returns its token bka_<id>_<secret>, shown once and never stored.
func (c *Catalog) CreateAnalyst(ctx context.Context, name string, budget analytics.Epsilon) (Analyst, string, error) {
	if err := ValidName(name); err != nil {
		return Analyst{}, "", err
	}
	if budget < 0 || budget > analytics.MaxEpsilon {
		return Analyst{}, "", fmt.Errorf("%w: a budget is 0 to %s", analytics.ErrInvalidEpsilon, analytics.MaxEpsilon)
	}
	a := Analyst{ID: newKeyID(), Name: name, Budget: budget, Remaining: budget, CreatedAt: c.now().UTC().Truncate(time.Microsecond)}
	secret := newSecret()
	hash := sha256.Sum256([]byte(secret))
	if _, err := c.exec(ctx, c.db, `INSERT INTO analysts (id, name, secret_hash, budget, spent, created_at) VALUES (?, ?, ?, ?, 0, ?)`,
		a.ID, name, hash[:], int64(budget), micros(a.CreatedAt)); err != nil {
		return Analyst{}, "", fmt.Errorf("create analyst: %w", err)
	}
	return a, analystTokenPrefix + a.ID + "_" + secret, nil
}

// RevokeAnalyst revokes an analyst at once; ErrAnalystNotFound if there is
// no such analyst. Revoking twice is a no-op.
func (c *Catalog) RevokeAnalyst(ctx context.Context, id string) error {
	if !validKeyID(id) {
		return fmt.Errorf("%w: %q", ErrAnalystNotFound, clipName(id))
	}
	res, err := c.exec(ctx, c.db, `UPDATE analysts SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, micros(c.now()), id)
	if err != nil {
		return fmt.Errorf("revoke analyst: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: %s", ErrAnalystNotFound, id)
	}
	return nil
}

const analystCols = `id, name, budget, spent, created_at, revoked_at`

func scanAnalyst(r rowScanner) (Analyst, error) {
	var (
		a             Analyst
		budget, spent int64
		created       int64
		revoked       sql.NullInt64
	)
	if err := r.Scan(&a.ID, &a.Name, &budget, &spent, &created, &revoked); err != nil {
		return Analyst{}, err
	}
	a.Budget, a.Spent = analytics.Epsilon(budget), analytics.Epsilon(spent)
	a.Remaining = a.Budget - a.Spent
	a.CreatedAt = fromMicros(created)
	if revoked.Valid {
		t := fromMicros(revoked.Int64)
		a.RevokedAt = &t
	}
	return a, nil
}

// Analyst returns an analyst (revoked or not), or ErrAnalystNotFound.
func (c *Catalog) Analyst(ctx context.Context, id string) (Analyst, error) {
	if !validKeyID(id) {
		return Analyst{}, fmt.Errorf("%w: %q", ErrAnalystNotFound, clipName(id))
	}
	a, err := scanAnalyst(c.queryRow(ctx, c.db, `SELECT `+analystCols+` FROM analysts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Analyst{}, fmt.Errorf("%w: %s", ErrAnalystNotFound, id)
	}
	if err != nil {
		return Analyst{}, fmt.Errorf("read analyst: %w", err)
	}
	return a, nil
}

// ListAnalysts returns every analyst, revoked ones included, oldest first,
// with their budgets.
func (c *Catalog) ListAnalysts(ctx context.Context) ([]Analyst, error) {
	rows, err := c.query(ctx, c.db, `SELECT `+analystCols+` FROM analysts ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list analysts: %w", err)
	}
	defer rows.Close()
	out := []Analyst{}
	for rows.Next() {
		a, err := scanAnalyst(rows)
		if err != nil {
			return nil, fmt.Errorf("list analysts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AuthenticateAnalyst resolves an analyst token: a malformed, unknown or
// revoked token or a wrong secret gives ErrUnauthenticated. The secret is
// compared in constant time against its stored SHA-256 hash.
func (c *Catalog) AuthenticateAnalyst(ctx context.Context, token string) (Analyst, error) {
	id, secret, ok := parsePrefixedToken(token, analystTokenPrefix)
	if !ok {
		return Analyst{}, ErrUnauthenticated
	}
	var (
		hash    []byte
		name    string
		revoked sql.NullInt64
	)
	err := c.queryRow(ctx, c.db, `SELECT name, secret_hash, revoked_at FROM analysts WHERE id = ?`, id).Scan(&name, &hash, &revoked)
	var stored [sha256.Size]byte
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Analyst{}, fmt.Errorf("read analyst: %w", err)
	default:
		copy(stored[:], hash)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], stored[:]) != 1 || err != nil || revoked.Valid {
		return Analyst{}, ErrUnauthenticated
	}
	return Analyst{ID: id, Name: name}, nil
}

// SpendBudget implements analytics.Budget: it takes eps from a live
// analyst's remaining budget in one statement (concurrent spends cannot
// overdraw it) and returns what remains. Too little left is an error
// wrapping analytics.ErrBudgetExhausted, a revoked or unknown analyst
// ErrAnalystNotFound; either way nothing is spent.
func (c *Catalog) SpendBudget(ctx context.Context, id string, eps analytics.Epsilon) (analytics.Epsilon, error) {
	if eps <= 0 || eps > analytics.MaxEpsilon {
		return 0, fmt.Errorf("%w: must be greater than 0 and at most %s", analytics.ErrInvalidEpsilon, analytics.MaxEpsilon)
	}
	var left int64
	err := c.queryRow(ctx, c.db, `UPDATE analysts SET spent = spent + ? WHERE id = ? AND revoked_at IS NULL AND budget - spent >= ?
		RETURNING budget - spent`, int64(eps), id, int64(eps)).Scan(&left)
	if err == nil {
		return analytics.Epsilon(left), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("spend privacy budget: %w", err)
	}
	a, err := c.Analyst(ctx, id)
	if err != nil {
		return 0, err
	}
	if a.RevokedAt != nil {
		return 0, fmt.Errorf("%w: %s is revoked", ErrAnalystNotFound, id)
	}
	return 0, fmt.Errorf("%w: the query asks for ε = %s and %s remains", analytics.ErrBudgetExhausted, eps, a.Remaining)
}

// ActiveTenants implements analytics.Tenants: every active tenant, by id,
// with its tier as the attribute analytics.AttrTier. It reads the catalog
// a page at a time, between calls of fn.
func (c *Catalog) ActiveTenants(ctx context.Context, fn func(analytics.Member) error) error {
	const page = 1000
	after := ""
	for {
		ts, err := c.ListTenants(ctx, after, page)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.State != Active {
				continue
			}
			if err := fn(analytics.Member{ID: t.ID, Attrs: map[string]string{analytics.AttrTier: t.Tier}}); err != nil {
				return err
			}
		}
		if len(ts) < page {
			return nil
		}
		after = ts[len(ts)-1].ID.String()
	}
}
