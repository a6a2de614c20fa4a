package server

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/outbox"
)

// Defaults of the outbox trimming (see Options.EventsMaxAge,
// EventsMaxCount, EventsTrimInterval).
const (
	DefaultEventsMaxAge       = outbox.DefaultMaxAge
	DefaultEventsMaxCount     = outbox.DefaultMaxCount
	DefaultEventsTrimInterval = outbox.DefaultTrimInterval
)

// eventTrim runs package outbox's Trimmer in the background: it deletes
// tenants' events past the maximum age or count, through the router, one
// tenant at a time.
type eventTrim struct {
	*outbox.Trimmer
	stop context.CancelFunc // nil when trimming is off
	done chan struct{}
}

// initEventTrim makes the trimmer and starts it unless
// Options.EventsTrimInterval is negative or both bounds are off.
func (s *Server) initEventTrim() error {
	o := &s.opts
	if o.EventsMaxAge == 0 {
		o.EventsMaxAge = DefaultEventsMaxAge
	}
	if o.EventsMaxCount == 0 {
		o.EventsMaxCount = DefaultEventsMaxCount
	}
	if o.EventsTrimInterval == 0 {
		o.EventsTrimInterval = DefaultEventsTrimInterval
	}
	m, err := outbox.NewTrimMetrics(s.metrics.Registerer(), s.metrics.TenantLabel)
	if err != nil {
		return fmt.Errorf("outbox metrics: %w", err)
	}
	tr, err := outbox.NewTrimmer(outbox.TrimOptions{Tenants: outbox.CatalogTenants(s.catalog), Store: s.router,
		MaxAge: max(o.EventsMaxAge, 0), MaxCount: max(o.EventsMaxCount, 0), Now: o.Now, Metrics: m, Logger: s.log})
	if err != nil {
		return err
	}
	s.eventTrim = &eventTrim{Trimmer: tr}
	if o.EventsTrimInterval < 0 || (o.EventsMaxAge < 0 && o.EventsMaxCount < 0) {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := s.eventTrim
	t.stop, t.done = cancel, make(chan struct{})
	go func() {
		defer close(t.done)
		tr.Run(ctx, o.EventsTrimInterval)
	}()
	return nil
}

// stopEventTrim stops the background trimming and waits for it to return.
// It is safe to call more than once.
func (s *Server) stopEventTrim() {
	if s.eventTrim == nil || s.eventTrim.stop == nil {
		return
	}
	s.eventTrim.stop()
	<-s.eventTrim.done
}
