package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// UsageView is what GET /v1/usage answers: the tenant's effective limits
// and its storage usage against them.
type UsageView struct {
	Tenant tenant.ID     `json:"tenant"`
	Limits limits.Limits `json:"limits"`
	Usage  Usage         `json:"usage"`
}

// tenantUsage reads the usage of the tenant in ctx: collections and
// records, and the bytes the quota counts (0 on a backend that does not
// keep usage). What it reads also refreshes the tenant's usage gauges,
// which costs nothing more.
func (s *Server) tenantUsage(ctx context.Context) (Usage, error) {
	var u Usage
	mark := s.tracked.Begin()
	err := s.router.ReadTx(ctx, func(tx *store.Tx) error {
		cs, err := tx.Collections(ctx)
		if err != nil {
			return err
		}
		u.Collections = len(cs)
		for _, c := range cs {
			u.Records += c.Records
		}
		su, err := tx.Usage(ctx)
		if errors.Is(err, store.ErrUsageUnsupported) {
			return nil
		}
		u.Bytes = su.Bytes
		return err
	})
	if err == nil {
		s.tracked.ObserveContext(ctx, store.Usage{Records: u.Records, Bytes: u.Bytes}, mark)
	}
	return u, err
}

// usage: GET /v1/usage, for any role of the tenant (policy action
// collection.list).
func (s *Server) usage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return err
	}
	l, err := s.tenantLimits(ctx)
	if err != nil {
		return err
	}
	u, err := s.tenantUsage(ctx)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, UsageView{Tenant: id, Limits: l, Usage: u})
	return nil
}

// tenantLimits returns the effective limits of the tenant in ctx. A tenant
// that is gone from the catalog meanwhile is as unknown as it is to the
// router (401, like a revoked credential).
func (s *Server) tenantLimits(ctx context.Context) (limits.Limits, error) {
	id, err := tenant.FromContext(ctx)
	if err != nil {
		return limits.Limits{}, err
	}
	l, err := s.limits.For(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return limits.Limits{}, fmt.Errorf("%w: %s", store.ErrUnknownTenant, id)
	}
	return l, err
}

// pageLimit applies the tenant's max_page_size to a list request: a larger
// limit is refused, and the default page is no larger than it.
func (s *Server) pageLimit(ctx context.Context, opts *store.ListOptions) error {
	l, err := s.tenantLimits(ctx)
	if err != nil {
		return err
	}
	max := l.MaxPageSize
	if max <= 0 {
		return nil
	}
	if opts.Limit > max {
		return newError(http.StatusBadRequest, "invalid_limit",
			"limit must be one integer from 1 to "+strconv.Itoa(max)+" (the tenant's max_page_size)")
	}
	if opts.Limit == 0 && store.DefaultLimit > max {
		opts.Limit = max
	}
	return nil
}
