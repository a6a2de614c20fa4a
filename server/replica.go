package server

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
)

// Read replicas: Options.PostgresReplicaURL for the main shard and
// ShardURLs.ReplicaURL for the others. The record API's read routes opt in
// (recordapi), writes answer with a commit token and reads honour
// Bulkhead-Read-After; see docs/postgresql.md.

// validateReplicas checks the replica URLs: they need PostgreSQL and must
// be PostgreSQL URLs. Its errors are *OptionError.
func (o Options) validateReplicas() error {
	var errs []error
	pg := o.PostgresURL != "" || o.PostgresAdminURL != ""
	if o.PostgresReplicaURL != "" {
		if !pg {
			errs = append(errs, &OptionError{Field: "PostgresReplicaURL", Err: errors.New("a read replica needs PostgreSQL: set PostgresURL and PostgresAdminURL too (the embedded SQLite store has no replicas)")})
		} else if err := checkPostgresURL(o.PostgresReplicaURL); err != nil {
			errs = append(errs, &OptionError{Field: "PostgresReplicaURL", Err: err})
		}
	}
	for _, s := range o.Shards {
		if s.ReplicaURL == "" {
			continue
		}
		if err := checkPostgresURL(s.ReplicaURL); err != nil {
			errs = append(errs, &OptionError{Field: "Shards", Shard: s.Name, Replica: true, Err: err})
		}
	}
	if o.ReplicaMaxLag < 0 {
		errs = append(errs, &OptionError{Field: "ReplicaMaxLag", Err: errors.New("must not be negative (0 means the default, 5s)")})
	}
	return errors.Join(errs...)
}

// replicaOptions is the postgres.ReplicaOptions of a shard whose replica
// is at url ("" for none).
func replicaOptions(url string, o Options, m *postgres.ReplicaMetrics, log *slog.Logger) postgres.ReplicaOptions {
	if url == "" {
		return postgres.ReplicaOptions{}
	}
	return postgres.ReplicaOptions{URL: url, MaxLag: o.ReplicaMaxLag, Metrics: m, Logger: log}
}

var (
	replicaLagDesc = prometheus.NewDesc("bulkhead_replica_lag_seconds",
		"How far each shard's read replica is behind its primary: the age of the oldest primary WAL position it had not replayed at the last poll.",
		[]string{"shard"}, nil)
	replicaUsableDesc = prometheus.NewDesc("bulkhead_replica_usable",
		"1 if the shard's read replica answers, is in recovery and logs in as the serving role; 0 if reads go to the primary.",
		[]string{"shard"}, nil)
)

// replicaGauges collects the lag and state of every shard's replica.
type replicaGauges map[string]*postgres.Backend

func (g replicaGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- replicaLagDesc
	ch <- replicaUsableDesc
}

func (g replicaGauges) Collect(ch chan<- prometheus.Metric) {
	for name, b := range g {
		lag, usable, ok := b.ReplicaLag()
		if !ok {
			continue
		}
		u := 0.0
		if usable {
			u = 1
		}
		ch <- prometheus.MustNewConstMetric(replicaLagDesc, prometheus.GaugeValue, lag.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(replicaUsableDesc, prometheus.GaugeValue, u, name)
	}
}

// registerReplicaMetrics registers bulkhead_replica_reads_total and the
// replica gauges when a shard has a replica.
func (s *Server) registerReplicaMetrics(backends map[string]store.Backend) {
	gauges := replicaGauges{}
	var counters *postgres.ReplicaMetrics
	for name, b := range backends {
		pb, ok := b.(*postgres.Backend)
		if !ok || pb.ReplicaMetrics() == nil {
			continue
		}
		gauges[name] = pb
		counters = pb.ReplicaMetrics() // one value for every shard (openPostgres)
	}
	if counters == nil {
		return
	}
	s.metrics.Registry().MustRegister(counters.Collector(), gauges)
}
