package analytics

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// DefaultK is the minimum number of tenants that must back a group for
// the group to be answered.
const DefaultK = 5

// AttrTier is the tenant attribute "tier" (the catalog's service tier).
const AttrTier = "tier"

// pageSize is how many records a tenant's read takes per page.
const pageSize = 200

// Member is a tenant a query may read, with the attributes it can be
// grouped by (e.g. {"tier": "standard"}).
type Member struct {
	ID    tenant.ID
	Attrs map[string]string
}

// Tenants lists the tenants queries read; *catalog.Catalog is one (its
// active tenants, with their tier).
type Tenants interface {
	ActiveTenants(ctx context.Context, fn func(Member) error) error
}

// Budget keeps each analyst's privacy budget; *catalog.Catalog is one.
// SpendBudget must take eps from the analyst's remaining budget
// atomically and return what remains, or fail with an error wrapping
// ErrBudgetExhausted and spend nothing.
type Budget interface {
	SpendBudget(ctx context.Context, analyst string, eps Epsilon) (remaining Epsilon, err error)
}

// Reader runs read transactions for the tenant in the context;
// *store.Router is one.
type Reader interface {
	ReadTx(ctx context.Context, fn func(*store.Tx) error) error
}

// Options configures an Engine. Tenants, Budget and Store are required.
type Options struct {
	Tenants Tenants
	Budget  Budget
	Store   Reader
	// K is the minimum number of backing tenants of an answered group
	// (DefaultK if 0).
	K int
	// GroupAttributes are the Member attributes a query may group by
	// (default: AttrTier). Their values should come from a small public
	// set (tiers): a group's key is shown whenever the group is.
	GroupAttributes []string
}

// Engine answers queries. It is safe for concurrent use.
type Engine struct {
	opts  Options
	noise sampler
}

// New returns an Engine whose noise comes from crypto/rand.
func New(opts Options) (*Engine, error) {
	if opts.Tenants == nil || opts.Budget == nil || opts.Store == nil {
		return nil, errors.New("analytics: Options.Tenants, Budget and Store are required")
	}
	if opts.K == 0 {
		opts.K = DefaultK
	}
	if opts.K < 1 {
		return nil, fmt.Errorf("analytics: Options.K is %d; it must be at least 1", opts.K)
	}
	if opts.GroupAttributes == nil {
		opts.GroupAttributes = []string{AttrTier}
	}
	return &Engine{opts: opts, noise: sampler{rand.Reader}}, nil
}

// Group is one answered group.
type Group struct {
	// Key is the group's attribute value ("" when the query has no
	// group_by).
	Key string `json:"key"`
	// Value is the noisy count, or the noisy sum as an exact decimal on
	// the query's grid.
	Value string `json:"value"`
}

// Result answers a query: only the groups backed by at least K tenants, in
// key order; the others are left out, with no sign that they exist.
type Result struct {
	Groups []Group `json:"groups"`
	// Epsilon is what the query spent; Remaining is the analyst's budget
	// left.
	Epsilon   Epsilon `json:"epsilon"`
	Remaining Epsilon `json:"remaining_budget"`
	// NoiseScale is the discrete Laplace scale b = Δ/ε of every group's
	// noise, in the answer's units: about 95% of answers are within 3b of
	// the truth.
	NoiseScale float64 `json:"noise_scale"`
	// K is the threshold of backing tenants.
	K int `json:"k"`
}

// Describe names q's shape for an audit log, without its answer:
// collection, field, aggregation, grouping, bounds, cap and ε.
func Describe(q Query) string {
	var b strings.Builder
	fmt.Fprintf(&b, "analytics/collections/%s?agg=%s&field=%s&group_by=%s", q.Collection, q.Agg, q.Field, q.GroupBy)
	if q.Agg == Sum {
		fmt.Fprintf(&b, "&lower=%g&upper=%g&decimals=%d", q.Lower, q.Upper, q.Decimals)
	}
	if q.MaxRecords == 0 {
		q.MaxRecords = DefaultMaxRecords
	}
	fmt.Fprintf(&b, "&max_records_per_tenant=%d&epsilon=%g", q.MaxRecords, q.Epsilon)
	return b.String()
}

// acc is a group's true answer: its backing tenants and their total.
type acc struct {
	tenants int
	total   big.Int
}

// Run answers q for analyst: it validates q (refusals spend nothing),
// spends q.Epsilon from the analyst's budget, then reads every active
// tenant's contribution in the tenant's own read transaction, pages at a
// time, and adds noise to the groups backed by at least K tenants. A
// tenant backs a group when at least one of its records contributes; a
// tenant without the collection backs nothing. The spend is not refunded
// if reading fails afterwards: a failure could depend on the data.
func (e *Engine) Run(ctx context.Context, analyst string, q Query) (Result, error) {
	p, err := compile(q, e.opts.GroupAttributes)
	if err != nil {
		return Result{}, err
	}
	remaining, err := e.opts.Budget.SpendBudget(ctx, analyst, p.eps)
	if err != nil {
		return Result{}, err
	}
	groups := map[string]*acc{}
	err = e.opts.Tenants.ActiveTenants(ctx, func(m Member) error {
		v, backed, err := e.contribution(ctx, m.ID, &p)
		if err != nil || !backed {
			return err
		}
		key := ""
		if q.GroupBy != "" {
			key = m.Attrs[q.GroupBy]
		}
		g := groups[key]
		if g == nil {
			g = &acc{}
			groups[key] = g
		}
		g.tenants++
		g.total.Add(&g.total, big.NewInt(v))
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("analytics: read tenants: %w", err)
	}
	return e.answer(&p, groups, remaining)
}

// answer adds noise to the groups backed by at least K tenants.
func (e *Engine) answer(p *plan, groups map[string]*acc, remaining Epsilon) (Result, error) {
	num, den := p.noiseScale()
	scale, _ := new(big.Rat).SetFrac(num, den).Float64()
	if p.q.Agg == Sum {
		scale /= p.grid
	}
	res := Result{Groups: []Group{}, Epsilon: p.eps, Remaining: remaining, NoiseScale: scale, K: e.opts.K}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		if g.tenants < e.opts.K {
			continue // suppressed: never shown, not even as absent
		}
		z, err := e.noise.discreteLaplace(num, den)
		if err != nil {
			return Result{}, fmt.Errorf("analytics: sample noise: %w", err)
		}
		z.Add(z, &g.total)
		res.Groups = append(res.Groups, Group{Key: key, Value: formatGrid(z, p.q.Decimals, p.q.Agg)})
	}
	return res, nil
}

// contribution reads one tenant's records of the collection, in the
// tenant's own read transaction, and returns their total: at most
// p.cap contributing records, one page in memory at a time. backed
// reports whether any record contributed.
func (e *Engine) contribution(ctx context.Context, id tenant.ID, p *plan) (total int64, backed bool, err error) {
	ctx = tenant.WithID(ctx, id)
	n := 0
	err = e.opts.Store.ReadTx(ctx, func(tx *store.Tx) error {
		opts := store.ListOptions{Limit: pageSize}
		for {
			page, err := tx.List(ctx, p.q.Collection, opts)
			if err != nil {
				return err
			}
			for _, rec := range page.Items {
				if v, ok := p.value(rec.Data); ok {
					total += v
					if n++; n == p.cap {
						return nil
					}
				}
			}
			if page.NextCursor == "" {
				return nil
			}
			opts.Cursor = page.NextCursor
		}
	})
	if errors.Is(err, store.ErrUnknownTenant) {
		return 0, false, nil // offboarded since it was listed
	}
	return total, n > 0, err
}

// formatGrid writes v (grid steps of 10^-decimals) as an exact decimal.
func formatGrid(v *big.Int, decimals int, agg Agg) string {
	s := v.String()
	if agg == Count || decimals == 0 {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if len(s) <= decimals {
		s = strings.Repeat("0", decimals-len(s)+1) + s
	}
	s = s[:len(s)-decimals] + "." + s[len(s)-decimals:]
	if neg {
		s = "-" + s
	}
	return s
}
