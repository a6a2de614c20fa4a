package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/server"
	"github.com/bulkhead-dev/bulkhead/telemetry"
)

func newServeCommand(g *globals) *cobra.Command {
	var maxOpen int
	var logLevel string
	var pg postgresFlags
	var replicas replicaFlags
	var policyDir string
	var redisURL string
	var instances int
	var failClosed bool
	var traceSteps bool
	var limitsFile string
	var usageTop int
	var usageSweep, retention time.Duration
	var evMaxAge, evTrim time.Duration
	var evMaxCount int
	var encrypt bool
	var keyring string
	var ev eventFlags
	var dash dashboardFlags
	var nf natsFlags
	var redactKeys, redactPatterns []string
	var hf healthFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Bulkhead server",
		Long: `Run the Bulkhead server on --addr with its data in --data-dir.

On first start it writes an operator token to <data-dir>/operator.token
(mode 0600) and logs the file's path, never the token. It stops gracefully on
SIGINT or SIGTERM: requests in flight finish and the stores are closed.

Without --postgres the catalog and the records are SQLite files in
--data-dir. With --postgres (serving role) and --postgres-admin (owner role)
they live on PostgreSQL: the catalog and shard "main" in that database, and
one more shard per --shard NAME=URL with its --shard-admin NAME=URL. serve
checks every shard's serving role at start and refuses to start if it could
bypass row-level security. --postgres-database-prefix P names database-mode
tenants' databases Pt_<id> on every shard; give migrate the same prefix.
--postgres-replica URL (and --shard-replica NAME=URL) is a streaming replica
of a shard that serves the record API's reads while it lags less than
--replica-max-lag; a write answers with Bulkhead-Commit-Token and a read
that sends it back as Bulkhead-Read-After sees that write.

Every request is authorized by Cedar policies: the embedded default set plus
the *.cedar files of --policy-dir, reloaded when they change (a set that does
not parse is refused at start and ignored on reload, keeping the last good
one). Check a directory with 'bulkhead policy check --dir D'.

Each tenant's request rate and concurrency are limited by its tier, its
catalog overrides and --limits-file (429 rate_limited with Retry-After and
RateLimit-* headers). --limits-file is a JSON file of tier defaults and
per-tenant overrides; it must parse at start and is reloaded on change
(a version that does not parse is logged and the last good one kept). With --redis the limits are shared by
all instances; if Redis is unreachable each instance limits locally at
1/--instances of the rate (logged once per outage), or, with
--ratelimit-fail-closed, answers 503.

/metrics shows the storage usage of the --usage-top-tenants biggest tenants
by name and sums the others under tenant="_other"; a background sweep reads
every tenant's usage every --usage-sweep-interval (at most 100 tenants a
second; a negative interval turns it off).

Every --retention-interval (default 1m; 0 turns it off) a background sweep
purges the records that tenants' retention rules let expire (see
` + "`bulkhead tenant retention --help`" + `), round-robin across tenants in
bounded batches, each tenant's purge audited on its chain.

Every --events-trim-interval (default 1m; 0 turns it off) a background run
trims tenants' change-event outboxes: events older than --events-max-age
(default 168h; 0: no age bound) and beyond each tenant's newest
--events-max-count (default 100000; 0: no count bound) are deleted, whether
or not every consumer has read them (a consumer behind a trim is told so).

OpenTelemetry tracing is off unless the standard variables turn it on:
OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_TRACES_EXPORTER=otlp) exports
spans over OTLP/HTTP; OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME and the other
OTEL_* variables apply. Spans carry the tenant, never tokens, paths or
record data.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxOpen < 1 {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--max-open-databases must be at least 1, got %d", maxOpen)}
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--log-level %q: use debug, info, warn or error", logLevel)}
			}
			if usageTop < 1 {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--usage-top-tenants must be at least 1, got %d", usageTop)}
			}
			if usageSweep == 0 {
				return &usageError{cmd: cmd.CommandPath(),
					err: errors.New("--usage-sweep-interval must not be 0 (use a negative value to turn the sweep off)")}
			}
			if retention < 0 {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--retention-interval must not be negative (0 turns the retention sweep off), got %s", retention)}
			}
			if evMaxAge < 0 || evTrim < 0 || evMaxCount < 0 {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--events-max-age (%s), --events-max-count (%d) and --events-trim-interval (%s) must not be negative (0 turns each off)",
						evMaxAge, evMaxCount, evTrim)}
			}
			if instances < 1 {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--instances must be at least 1, got %d", instances)}
			}
			if err := ev.check(); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			opts := server.Options{MaxOpenDatabases: maxOpen, PolicyDir: policyDir,
				LimitsFile: limitsFile, RedisURL: redisURL, Instances: instances, RateLimitFailClosed: failClosed,
				UsageTopTenants: usageTop, UsageSweepInterval: usageSweep, RetentionInterval: retention,
				DisableEncryption: !encrypt, KeyringPath: keyring}
			if retention == 0 {
				opts.RetentionInterval = -1 // off
			}
			ev.apply(&opts)
			dash.apply(&opts)
			nf.apply(&opts)
			opts.EventsMaxAge, opts.EventsMaxCount, opts.EventsTrimInterval = offIfZero(evMaxAge), evMaxCount, offIfZero(evTrim)
			if evMaxCount == 0 {
				opts.EventsMaxCount = -1 // no count bound
			}
			shards, err := pg.parse()
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			// The prefix names database-mode tenants' databases on every
			// shard; migrate takes the same flag to find them.
			opts.PostgresDatabasePrefix = pg.dbPrefix
			for _, sh := range shards {
				if sh.Name == defaultShard {
					opts.PostgresURL, opts.PostgresAdminURL = sh.URL, sh.AdminURL
					continue
				}
				opts.Shards = append(opts.Shards, server.ShardURLs{Name: sh.Name, URL: sh.URL, AdminURL: sh.AdminURL})
			}
			hf.apply(&opts)
			if err := replicas.apply(cmd.Flags(), &opts); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			if err := opts.Validate(); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: flagErrors(err)}
			}
			if opts.PostgresURL != "" && !cmd.Flags().Changed("max-open-databases") {
				opts.MaxOpenDatabases = 0 // the PostgreSQL backend's own default
			}
			opts.Logger = telemetry.NewLogger(cmd.ErrOrStderr(), level)
			opts.LogRedactKeys, opts.LogRedactPatterns = redactKeys, redactPatterns
			opts.TraceSteps = traceSteps
			if _, err := telemetry.CompileRedactPatterns(redactPatterns); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--log-redact-patterns: %w", err)}
			}
			return serve(cmd.Context(), g.addr, g.dataDir, opts)
		},
	}
	cmd.Flags().IntVar(&maxOpen, "max-open-databases", 256,
		"database-mode files (SQLite) or tenant database pools per shard (PostgreSQL, default 64) kept open at once")
	pg.register(cmd.Flags())
	nf.register(cmd.Flags())
	replicas.register(cmd.Flags())
	hf.register(cmd.Flags())
	cmd.Flags().StringVar(&policyDir, "policy-dir", "",
		"directory of Cedar policies (*.cedar) added to the default set; default.cedar there replaces it; reloaded on change")
	cmd.Flags().StringVar(&limitsFile, "limits-file", "",
		"JSON file of tier defaults and per-tenant limit overrides (wins over the catalog); reloaded on change")
	cmd.Flags().StringVar(&redisURL, "redis", "",
		"Redis URL (redis://host:6379/0) for rate limits shared by all instances; default: each instance limits alone")
	cmd.Flags().IntVar(&instances, "instances", 1,
		"number of server instances sharing --redis; while Redis is unreachable each allows 1/N of every tenant's rate")
	cmd.Flags().BoolVar(&failClosed, "ratelimit-fail-closed", false,
		"while Redis is unreachable, refuse rate-limited requests with 503 instead of limiting locally")
	cmd.Flags().IntVar(&usageTop, "usage-top-tenants", server.DefaultUsageTopTenants,
		"tenants named on the bulkhead_tenant_usage_* gauges, the biggest by bytes; the others are summed as _other")
	cmd.Flags().DurationVar(&usageSweep, "usage-sweep-interval", server.DefaultUsageSweepInterval,
		"pause between background sweeps of every tenant's storage usage for those gauges; negative: no sweep")
	cmd.Flags().BoolVar(&encrypt, "encryption", true,
		"encrypt record data at rest with each tenant's own keys (--encryption=false stores it in the clear)")
	cmd.Flags().StringVar(&keyring, "keyring", "",
		"the key-encryption key's file (default <data-dir>/keyring, 0600); keep it out of the databases' backups")
	cmd.Flags().DurationVar(&retention, "retention-interval", server.DefaultRetentionInterval,
		"pause between background sweeps that purge records past their tenant's retention rules; 0: no sweep")
	cmd.Flags().DurationVar(&evMaxAge, "events-max-age", server.DefaultEventsMaxAge,
		"change events older than this are trimmed from tenants' outboxes; 0: no age bound")
	cmd.Flags().IntVar(&evMaxCount, "events-max-count", server.DefaultEventsMaxCount,
		"change events of a tenant beyond its newest N are trimmed; 0: no count bound")
	cmd.Flags().DurationVar(&evTrim, "events-trim-interval", server.DefaultEventsTrimInterval,
		"pause between background runs that trim tenants' outboxes to --events-max-age and --events-max-count; 0: no trimming")
	ev.register(cmd.Flags())
	dash.register(cmd.Flags())
	cmd.Flags().BoolVar(&traceSteps, "trace-steps", false,
		"with tracing on (OTEL_EXPORTER_OTLP_ENDPOINT), make each of the gate's steps (authentication, policy, admission) a span of its own; costs about 3% of throughput")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error (logs are JSON lines on stderr)")
	cmd.Flags().StringSliceVar(&redactKeys, "log-redact-keys", nil,
		"more attribute keys whose values the log hides (comma-separated), besides authorization, cookie, token, secret, password, api_key...")
	cmd.Flags().StringArrayVar(&redactPatterns, "log-redact-patterns", nil,
		"a regular expression (RE2) whose matches the log hides, besides tokens, bearer credentials, JWTs and e-mail addresses (repeatable)")
	return cmd
}

// offIfZero maps a flag's 0 ("off") to the negative value Options reads as
// off (its 0 means the default).
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// serve runs the server until ctx is done or the process gets SIGINT or
// SIGTERM, then shuts it down gracefully and closes the stores.
func serve(ctx context.Context, addr, dataDir string, opts server.Options) error {
	logger := opts.Logger // redacted with the default rules (telemetry.NewLogger)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, restore the default behaviour so that a
		// second Ctrl-C stops a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()

	hostPort, err := listenAddress(addr)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("data dir %q: %w", dataDir, err)
	}

	// Listen before opening the data directory, so that a taken port fails
	// fast and touches nothing.
	ln, err := net.Listen("tcp", hostPort)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: address already in use (is another bulkhead serve running? choose another --addr or BULKHEAD_ADDR)", hostPort)
		}
		return fmt.Errorf("listen on %s: %w (set --addr or BULKHEAD_ADDR to a free host:port)", hostPort, err)
	}
	opts.DataDir = dir
	tp, err := setupTracing(ctx, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer flushTracing(tp, logger)
	opts.TracerProvider = tp
	srv, err := server.Open(ctx, opts)
	if err != nil {
		ln.Close()
		return flagErrors(err) // says what failed where, and how to fix it
	}
	logger = srv.Logger() // redacted with the --log-redact-* rules too
	logger.Info("bulkhead listening",
		"addr", "http://"+ln.Addr().String(),
		"data_dir", dir,
		"operator_token_file", srv.OperatorTokenPath())

	serveErr := srv.Serve(ctx, ln) // returns once ctx is done and requests have finished
	closeErr := srv.Close()
	if err := errors.Join(serveErr, closeErr); err != nil {
		return err
	}
	logger.Info("bulkhead stopped")
	return nil
}

// listenAddress turns --addr into a host:port to listen on. It accepts the
// forms the client commands accept (host:port, :port, http://host:port), so
// one BULKHEAD_ADDR serves both.
func listenAddress(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", fmt.Errorf("invalid --addr %q: %v (use host:port, e.g. %s)", addr, err, defaultAddr)
		}
		return addr, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("invalid --addr %q: %v (use host:port, e.g. %s)", addr, err, defaultAddr)
	}
	if u.Scheme != "http" {
		return "", fmt.Errorf("invalid --addr %q: serve speaks plain http; use host:port and put TLS in front of it", addr)
	}
	if u.Port() == "" {
		return "", fmt.Errorf("invalid --addr %q: no port (use host:port, e.g. %s)", addr, defaultAddr)
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("invalid --addr %q: serve cannot listen on a path prefix (use host:port)", addr)
	}
	return u.Host, nil
}
