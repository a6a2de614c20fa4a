package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/analytics"
	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/dashboard"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/health"
	"github.com/bulkhead-dev/bulkhead/identity"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/internal/datadir"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/ratelimit"
	"github.com/bulkhead-dev/bulkhead/receipt"
	"github.com/bulkhead-dev/bulkhead/recordapi"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// LocalShard is the name of the embedded SQLite shard, used only when no
// PostgreSQL is configured.
const LocalShard = "local"

// Server is a Bulkhead server: the v1 HTTP API over a catalog and a store
// router. It is safe for concurrent use.
type Server struct {
	opts      Options
	log       *slog.Logger
	catalog   *catalog.Catalog
	router    *store.Router // fleet.Router()
	fleet     *fleet.Fleet  // tenant lifecycle: create, suspend, resume, offboard
	metrics   *telemetry.Metrics
	opHash    [32]byte // SHA-256 of the operator token; the token itself is not kept
	opPath    string
	lock      *datadir.Lock // <data-dir>/serve.lock, held until Close
	policy    *policy.Engine
	audit     *audit.Log
	verifier  *identity.Verifier // tenant users' JWTs
	gate      *ingress.Gate
	handler   http.Handler
	records   *recordapi.API // the data plane's records
	analytics *analytics.Engine
	admission *admission.Controller
	// Rate limiting (ratelimit.go); redis is closed by Close.
	limiter    ratelimit.Limiter
	rateLimits limits.Source
	throttled  *prometheus.CounterVec // bulkhead_ratelimit_throttled_total
	redis      redis.UniversalClient
	// limits resolves effective limits (tier, catalog, LimitsFile); the
	// store checks quotas with it.
	limits     *limits.Resolver
	limitsFile *limits.File
	// Storage usage gauges (usagegauges.go): the tracker the collector
	// publishes and the sweeper that feeds it (stopped by Close).
	tracked *usageGauges
	enc     *encryption // nil when DisableEncryption
	// receiptSigner signs offboarding receipts (<data-dir>/receipt.key).
	receiptSigner ed25519.PrivateKey
	// retention purges expired records in the background (retention.go).
	retention *retentionSweep
	// feed is the change feed, GET /v1/events (events.go).
	feed *eventFeed
	// natsRelay publishes events to NATS (relay.go); nil without NATSURL.
	natsRelay relayPtr
	// eventTrim trims tenants' outboxes in the background (outbox.go).
	eventTrim *eventTrim
	// dash is the operator dashboard at /dashboard (dashboard.go); nil
	// with Options.DisableDashboard.
	dash *dashboard.Dashboard
	// health keeps per-tenant health and anomaly flags (health.go).
	health   *health.Monitor
	closeOne sync.Once
	closeErr error
}

// Open opens the server's state in opts.DataDir: it creates the directory
// and takes its lock (failing with an error wrapping ErrDataDirLocked, which
// names the holder's pid and start time, while another server holds it),
// tightens any looser mode in it to 0700 or 0600 with a warning, creates the
// cursor key and the operator token on first start (logging the token
// file's path, never the token), opens the catalog and the backends, and
// finishes offboardings a crash interrupted.
//
// Without PostgresURL the catalog and the records are SQLite files in
// DataDir (shard LocalShard). With it, every shard (MainShard and Shards)
// is a PostgreSQL backend and the catalog lives in the main shard's
// database; Open fails, saying how to fix it, if a shard's serving role
// could bypass row-level security (superuser, BYPASSRLS or table owner).
func Open(ctx context.Context, opts Options) (_ *Server, err error) {
	if opts.DataDir == "" {
		return nil, errors.New("open server: Options.DataDir is required (for example ./bulkhead-data)")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	if opts.MaxOpenDatabases <= 0 && opts.PostgresURL == "" {
		opts.MaxOpenDatabases = DefaultMaxOpenDatabases
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Logger == nil {
		opts.Logger = telemetry.NewLogger(os.Stderr, slog.LevelInfo)
	}
	if opts.Logger, err = redactLogger(opts); err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	dir := opts.DataDir
	if err := os.MkdirAll(dir, datadir.PrivateDir); err != nil {
		return nil, fmt.Errorf("open server: create data dir: %w", err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	defer func() {
		if err != nil {
			_ = lock.Release()
		}
	}()
	if err := datadir.Privatize(dir, ownEntry, opts.Logger); err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	cursorKey, err := loadCursorKey(dir)
	if err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	opHash, created, err := loadOperatorToken(dir)
	if err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	receiptSigner, err := receipt.LoadKey(filepath.Join(dir, receiptKeyFile))
	if err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	s := &Server{
		opts:          opts,
		log:           opts.Logger,
		opHash:        opHash,
		receiptSigner: receiptSigner,
		lock:          lock,
		opPath:        filepath.Join(dir, operatorTokenFile),
		metrics:       telemetry.NewMetrics(telemetry.MetricsOptions{MaxTenants: opts.MaxTenantLabels, Now: opts.Now}),
	}
	if s.health, err = s.newHealth(); err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	if created {
		s.log.Info("operator token created; pass it as 'Authorization: Bearer <token>' to /v1/admin", slog.String("path", s.opPath))
	} else {
		s.log.Info("operator token loaded", slog.String("path", s.opPath))
	}

	if s.policy, err = policy.New(policy.Options{Dir: opts.PolicyDir, Logger: s.log}); err != nil {
		return nil, fmt.Errorf("open server: load policies: %w", err)
	}
	cat, backends, err := openStores(ctx, opts, s.log)
	if err != nil {
		return nil, fmt.Errorf("open server: %w", err)
	}
	s.registerReplicaMetrics(backends)
	if s.audit, err = openAudit(ctx, opts, backends); err != nil {
		cat.Close()
		for _, b := range backends {
			b.Close()
		}
		return nil, fmt.Errorf("open server: open audit log: %w", err)
	}
	if s.enc, err = openEncryption(ctx, opts, backends); err != nil {
		s.audit.Close()
		cat.Close()
		for _, b := range backends {
			b.Close()
		}
		return nil, fmt.Errorf("open server: encryption: %w", err)
	}
	if opts.LimitsFile != "" {
		if s.limitsFile, err = limits.OpenFile(opts.LimitsFile, s.log); err != nil {
			err = fmt.Errorf("open server: %w", err)
		}
	}
	s.limits = limits.NewResolver(cat, s.limitsFile)
	s.feed = newEventHub(opts)
	var fl *fleet.Fleet
	if err == nil {
		fl, err = fleet.New(fleet.Config{Catalog: cat, Backends: backends, Placement: opts.Placement,
			Router: store.Config{CursorKey: cursorKey, Quotas: s.limits, Now: opts.Now, Sealer: s.enc.sealer(),
				EventsCommitted: s.committed, EventData: cat, TracerProvider: opts.TracerProvider}, Keys: s.enc.fleetKeys()})
	}
	if err != nil {
		_ = s.enc.close()
		s.audit.Close()
		cat.Close()
		for _, b := range backends {
			b.Close()
		}
		return nil, fmt.Errorf("open server: %w", err)
	}
	s.catalog, s.fleet, s.router = cat, fl, fl.Router()
	if err := fl.ResumeOffboarding(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: finish interrupted offboardings: %w", err)
	}
	if s.opts.AdmissionLimits == nil {
		s.opts.AdmissionLimits = s.limits
	}
	s.admission = newAdmission(s.opts, s.metrics)
	if s.redis, err = s.openRateLimiter(s.opts); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if s.gate, err = s.newGate(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if s.records, err = s.newRecordAPI(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if s.analytics, err = s.newAnalytics(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if err := s.initEvents(cursorKey); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if s.dash, err = s.newDashboard(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	s.handler = s.routes()
	s.initUsageGauges()
	if err := s.initRetention(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if err := s.initEventTrim(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if err := s.initRelay(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if err := s.startEncryption(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open server: start the seal job: %w", err)
	}
	return s, nil
}

// openAudit opens the audit log: <data-dir>/audit.db, or the schema
// bulkhead_audit on the main PostgreSQL shard's owner pool.
func openAudit(ctx context.Context, opts Options, backends map[string]store.Backend) (*audit.Log, error) {
	if opts.PostgresURL == "" {
		path := filepath.Join(opts.DataDir, audit.FileName)
		if err := datadir.CreatePrivate(path); err != nil {
			return nil, err
		}
		return audit.OpenSQLite(path)
	}
	main, ok := backends[MainShard].(*postgres.Backend)
	if !ok {
		return nil, errors.New("no main PostgreSQL shard")
	}
	return audit.OpenPostgres(ctx, main.OperatorPool())
}

// openStores opens the catalog and the backends: SQLite in the data
// directory, or PostgreSQL when configured.
func openStores(ctx context.Context, opts Options, log *slog.Logger) (*catalog.Catalog, map[string]store.Backend, error) {
	if opts.PostgresURL != "" {
		return openPostgres(ctx, opts, log)
	}
	path := filepath.Join(opts.DataDir, catalogFile)
	if err := datadir.CreatePrivate(path); err != nil {
		return nil, nil, err
	}
	cat, err := catalog.Open(path, catalog.Options{Now: opts.Now})
	if err != nil {
		return nil, nil, err
	}
	backend, err := sqlite.Open(opts.DataDir, sqlite.Options{MaxOpenDatabases: opts.MaxOpenDatabases})
	if err != nil {
		cat.Close()
		return nil, nil, err
	}
	return cat, map[string]store.Backend{LocalShard: backend}, nil
}

// Handler returns the server's HTTP handler: the whole v1 API with its
// middleware (request id, request log and metrics, panic recovery, body
// limit; authentication per route).
func (s *Server) Handler() http.Handler { return s.handler }

// OperatorTokenPath returns the path of the operator token file.
func (s *Server) OperatorTokenPath() string { return s.opPath }

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully:
// it stops accepting, lets in-flight requests finish for at most
// Options.ShutdownTimeout, and returns nil if they all did. It stops the
// usage sweeper at shutdown but does not close the stores; call Close
// after Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.feed.hub.Shutdown) // event streams never finish by themselves
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.policy.Watch(wctx)
	go s.health.Run(wctx)
	if s.limitsFile != nil {
		go s.limitsFile.Watch(wctx, 0)
	}
	// Serving ends once the usage sweeper has stopped: background reads
	// have no business competing with the requests that are finishing.
	sctx, endServing := context.WithCancel(context.WithoutCancel(ctx))
	defer endServing()
	stopHook := context.AfterFunc(ctx, func() {
		s.stopUsageSweeper()
		s.stopRetention()
		s.stopEventTrim()
		s.log.Info("shutting down; waiting for in-flight requests", slog.Duration("timeout", s.opts.ShutdownTimeout))
		endServing()
	})
	defer stopHook()
	s.log.Info("serving", slog.String("addr", ln.Addr().String()))
	if err := ingress.Serve(sctx, srv, ln, s.opts.ShutdownTimeout); err != nil {
		return err
	}
	s.log.Info("shut down cleanly")
	return nil
}

// Close stops the usage sweeper (waiting for it) and closes the catalog
// and the store router (and its backends). It is safe to call more than
// once.
func (s *Server) Close() error {
	s.closeOne.Do(func() {
		// The sweepers first: they use the catalog and the stores.
		s.stopUsageSweeper()
		s.feed.stop()
		s.stopRetention()
		s.stopRelay() // it reads the outboxes and saves positions
		s.stopEventTrim()
		var errs []error
		// The key jobs next: they write through the router.
		if err := s.enc.close(); err != nil {
			errs = append(errs, fmt.Errorf("close key store: %w", err))
		}
		// Then the catalog: on PostgreSQL it runs on a backend's pool.
		if s.catalog != nil {
			if err := s.catalog.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close catalog: %w", err))
			}
		}
		if s.verifier != nil {
			_ = s.verifier.Close()
		}
		if s.audit != nil {
			if s.gate != nil { // the counts of unauthenticated requests still open
				if err := s.gate.FlushFailures(context.Background()); err != nil {
					errs = append(errs, fmt.Errorf("audit: %w", err))
				}
			}
			if err := s.audit.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close audit log: %w", err))
			}
		}
		if s.redis != nil {
			_ = s.redis.Close()
		}
		if s.router != nil {
			if err := s.router.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close store: %w", err))
			}
		}
		// Last: the next server may take the directory only once this one
		// has let go of everything in it.
		if err := s.lock.Release(); err != nil {
			errs = append(errs, fmt.Errorf("release data directory: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
