package relay_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/sched"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestRelayOnPostgres: the relay over a PostgreSQL fleet with a tenant in
// each mode (pooled under RLS, schema, database) publishes each tenant's
// events once, in order, on its own subject, and saves each position in
// the tenant's own storage.
func TestRelayOnPostgres(t *testing.T) {
	pg := pgtest.New(t)
	url := natsURL(t)
	e := &env{nc: connect(t, url), sch: sched.New(sched.Options{}), reg: prometheus.NewRegistry()}
	e.js = mustJetStream(t, e.nc)
	e.stream, e.prefix = testStream(t, e.nc)
	var err error
	e.fl, err = fleet.OpenPostgres(context.Background(), postgres.Shard{Name: "main", URL: pg.ServeURL, AdminURL: pg.AdminURL},
		fleet.OpenOptions{DatabasePrefix: pg.Prefix, MaxConns: 8, Router: store.Config{EventsCommitted: e.sch.Ready}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.fl.Close() })
	modes := map[string]string{"pooled-t": "pooled", "schema-t": "schema", "database-t": "database"}
	for id, mode := range modes {
		e.create(t, id, mode)
	}
	e.run(t, e.options())
	for range 2 {
		for id := range modes {
			e.write(t, tenant.MustParse(id), "orders", 60)
		}
	}
	waitFor(t, "360 messages", func() bool { return e.count(t) == 360 })
	next := map[string]int64{}
	for _, m := range e.messages(t) {
		tn := m.ev.Tenant.String()
		if m.subject != e.prefix+"."+tn+".orders" || m.tenant != tn {
			t.Fatalf("message %d: subject %q, header tenant %q, event of %s", m.seq, m.subject, m.tenant, tn)
		}
		next[tn]++
		if m.ev.Seq != next[tn] {
			t.Fatalf("%s: event %d where %d was due", tn, m.ev.Seq, next[tn])
		}
	}
	for id := range modes {
		waitFor(t, id+"'s offset", func() bool { return e.offset(t, tenant.MustParse(id)) == 120 })
	}
}
