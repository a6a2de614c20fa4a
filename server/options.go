package server

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/limits"
)

// Defaults for Options.
const (
	DefaultMaxOpenDatabases = 256
	DefaultMaxBodyBytes     = 1 << 20
	DefaultShutdownTimeout  = 30 * time.Second
)

// Options configures Open.
type Options struct {
	// DataDir holds the catalog, the records and the server's secrets. It
	// is required and created (mode 0700) if missing. One Server at a time
	// owns it: Open locks it (serve.lock) until Close, on SQLite and on
	// PostgreSQL alike; everything in it is made private (0700
	// directories, 0600 files).
	DataDir string
	// MaxOpenDatabases bounds the database-mode handles kept open (LRU):
	// SQLite files (default DefaultMaxOpenDatabases), or PostgreSQL tenant
	// database pools per shard (default postgres.DefaultMaxOpenDatabases).
	MaxOpenDatabases int
	// MaxBodyBytes bounds request bodies; default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Logger receives the request log and server events; nil means JSON
	// to stderr.
	Logger *slog.Logger
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// after its context is done; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxTenantLabels bounds the distinct tenant label values of the
	// metrics; default telemetry.DefaultMaxTenants.
	MaxTenantLabels int

	// PostgresURL, when set, puts the catalog and the records on
	// PostgreSQL instead of SQLite: it is the serving role's URL of the
	// main shard (MainShard), whose database also holds the catalog.
	// DataDir then holds only the operator token and the cursor key.
	PostgresURL string
	// PostgresAdminURL is the owner/migrator role's URL of the main
	// shard's database; required with PostgresURL.
	PostgresAdminURL string
	// Shards are more PostgreSQL shards besides the main one.
	Shards []ShardURLs
	// PostgresMaxConns bounds each PostgreSQL pool (default
	// postgres.DefaultMaxConns).
	PostgresMaxConns int32
	// PostgresDatabasePrefix is put before the names of tenant databases
	// (database mode), so that several deployments or test runs can share
	// one PostgreSQL server; at most 20 characters of a-z, 0-9 and '_'.
	PostgresDatabasePrefix string
	// PostgresReplicaURL is a streaming replica of the main shard's
	// server, as the serving role: the record API's read routes are served
	// by it when it is fresh enough (see docs/postgresql.md). Extra shards
	// give theirs in ShardURLs.ReplicaURL.
	PostgresReplicaURL string
	// ReplicaMaxLag is how far behind its primary a replica may be and
	// still serve reads without a read-after token (default
	// postgres.DefaultReplicaMaxLag, 5 s).
	ReplicaMaxLag time.Duration
	// Placement chooses the shard and mode of each new tenant; nil means
	// fleet.FewestTenants (the mode asked for, else pooled; the shard asked
	// for, else the one hosting the fewest tenants).
	Placement fleet.PlacementRule

	// PolicyDir is an optional directory of Cedar policies (--policy-dir)
	// added to the embedded default set; Serve reloads it on change and
	// keeps the last good set if a new one does not parse.
	PolicyDir string
	// Now is the clock for credentials, grants, caches, record timestamps
	// and retention cutoffs (time.Now if nil); tests move it to expire
	// grants, tokens and records.
	Now func() time.Time
	// JWKSClient fetches identity providers' JWKS (nil: a default client
	// with timeouts).
	JWKSClient *http.Client

	// AdmissionCapacity is the global cap on data-plane requests in flight
	// (default admission.DefaultCapacity(): 4×GOMAXPROCS, at least 16).
	AdmissionCapacity int
	// AdmissionFIFO turns fair admission off: one plain FIFO queue under
	// the cap, no per-tenant concurrency limit (for comparison only).
	AdmissionFIFO bool
	// AdmissionMaxWait bounds a request's wait for admission (default
	// admission.DefaultMaxWait).
	AdmissionMaxWait time.Duration
	// AdmissionLimits gives each tenant's MaxConcurrent, Weight and
	// QueueDepth; nil means the server's limits.Resolver (tier, catalog
	// overrides, LimitsFile).
	AdmissionLimits limits.Source

	// RateLimits gives each tenant's RequestsPerSecond and Burst for the
	// rate limiter; nil means the server's limits.Resolver (tier, catalog
	// overrides, LimitsFile). Rate limiting is on unless DisableRateLimit.
	RateLimits limits.Source
	// DisableRateLimit turns rate limiting off (for tests and benchmarks
	// that measure something else); RateLimits is then ignored.
	DisableRateLimit bool
	// RedisURL, when set, keeps the rate limits in Redis (redis://...),
	// shared by every instance; otherwise each instance limits alone.
	RedisURL string
	// RedisKeyPrefix is put before tenant ids to make their Redis keys
	// (default ratelimit.DefaultKeyPrefix).
	RedisKeyPrefix string
	// Instances is the number of server instances sharing RedisURL
	// (default 1); while Redis is unreachable each one allows
	// 1/Instances of every tenant's limit.
	Instances int
	// RateLimitFailClosed refuses rate-limited requests (503) while Redis
	// is unreachable instead of falling back to local limits.
	RateLimitFailClosed bool

	// LimitsFile is an optional JSON limits file (tier defaults and
	// per-tenant overrides, see package limits) polled for changes while
	// Serve runs; a version that does not parse is logged and the last
	// good one kept. The file must parse at Open.
	LimitsFile string

	// UsageTopTenants is how many tenants, the biggest by stored bytes,
	// get their own tenant label on the bulkhead_tenant_usage_* gauges
	// (default DefaultUsageTopTenants); all the others are summed under
	// tenant="_other", so the gauges have at most UsageTopTenants+1
	// label values however many tenants there are.
	UsageTopTenants int
	// UsageSweepInterval is the pause between two background sweeps that
	// read every serving tenant's storage usage for those gauges (default
	// DefaultUsageSweepInterval). A sweep reads at most
	// usage.DefaultSweepRate tenants per second, so its cost stays small
	// next to the requests; between sweeps the gauges also take the usage
	// that committed writes leave and that GET /v1/usage and GET
	// /v1/admin/tenants/{id} read anyway. A negative value turns the
	// sweeper off: the gauges then show only tenants whose usage a request
	// has written or read.
	UsageSweepInterval time.Duration

	// DisableEncryption stores record data in the clear. By default it is
	// encrypted at rest with each tenant's own keys (package keys).
	DisableEncryption bool
	// KeyringPath is the key-encryption key's file; <DataDir>/keyring if
	// empty. Keep it out of the databases' backups (docs/encryption.md).
	KeyringPath string
	// KeyCacheTTL is how long unwrapped tenant keys are used before they
	// are read again (keys.Config.TTL); one minute if zero.
	KeyCacheTTL time.Duration
	// SkipSealJob does not start the job that encrypts records stored in
	// the clear (tests that want to watch it).
	SkipSealJob bool
	// AnalyticsMinTenants is the k-threshold of POST /v1/analytics/query:
	// a group backed by fewer tenants is never shown (default
	// analytics.DefaultK).
	AnalyticsMinTenants int
	// RetentionInterval is the pause between two background sweeps that
	// purge the records tenants' retention rules let expire (default
	// DefaultRetentionInterval; negative: no sweeps). See package retention.
	RetentionInterval time.Duration

	// EventsMaxStreams bounds each tenant's open GET /v1/events streams
	// on this instance (default DefaultEventsMaxStreams; more: 429
	// too_many_streams). EventsMaxStreamsTotal bounds all tenants' together
	// (default DefaultEventsMaxStreamsTotal; more: 503 overloaded).
	EventsMaxStreams      int
	EventsMaxStreamsTotal int
	// EventsPollInterval is how often the server wakes every open stream
	// to read its tenant's outbox (events.Hub.Poll: one read per tenant),
	// so that commits of other instances on the same PostgreSQL reach it
	// within that time. Zero means
	// DefaultEventsPollInterval on PostgreSQL and no polling on SQLite
	// (one process owns the data directory: every commit wakes its
	// streams at once); negative means no polling.
	EventsPollInterval time.Duration
	// EventsCheckInterval is how often an open stream checks that its
	// credential still holds and its tenant still exists (default
	// DefaultEventsCheckInterval): a revoked key, a suspended or deleted
	// tenant ends its streams within it.
	EventsCheckInterval time.Duration
	// EventsHeartbeat is the pause between ": ping" comments on an idle
	// stream (default DefaultEventsHeartbeat).
	EventsHeartbeat time.Duration
	// EventsWriteTimeout bounds each write to a stream's client (default
	// DefaultEventsWriteTimeout): a client that reads nothing for that
	// long is dropped.
	EventsWriteTimeout time.Duration
	// NATSURL, when set (nats://host:4222), relays every tenant's outbox
	// events to NATS JetStream (package relay): subjects
	// <NATSSubjectPrefix>.<tenant>.<collection> in stream NATSStream,
	// which is created if missing. Open fails if NATS is unreachable.
	// Empty: no relay; the embedded default needs no NATS.
	NATSURL string
	// NATSStream is the JetStream stream (default relay.DefaultStream).
	NATSStream string
	// NATSSubjectPrefix is the subjects' first token (default
	// relay.DefaultSubjectPrefix): deployments sharing a NATS server
	// need different ones.
	NATSSubjectPrefix string
	// EventsMaxAge is how long tenants' change events are kept in their
	// outboxes (default DefaultEventsMaxAge; negative: no age bound).
	EventsMaxAge time.Duration
	// EventsMaxCount is how many of each tenant's newest events are kept
	// (default DefaultEventsMaxCount; negative: no count bound). Trimming
	// does not wait for consumers: see package outbox.
	EventsMaxCount int
	// EventsTrimInterval is the pause between two background runs that
	// trim the outboxes to those bounds (default
	// DefaultEventsTrimInterval; negative: no trimming).
	EventsTrimInterval time.Duration

	// DisableDashboard turns the operator dashboard at /dashboard off.
	DisableDashboard bool
	// DashboardOrigin is the dashboard's public origin
	// ("https://ops.example.com") when a proxy in front changes the scheme
	// or host; sign-ins and sign-outs from any other origin are refused.
	// Empty: the request's own.
	DashboardOrigin string
	// DashboardSecureCookie marks the dashboard's session cookie Secure
	// (set it when a TLS-terminating proxy is in front).
	DashboardSecureCookie bool
	// HealthMaxTenants caps the tenants whose health the server keeps
	// (default health.DefaultMaxTenants, about 3 KiB each; the least
	// recently seen go first).
	HealthMaxTenants int
	// HealthMaxFlagLabels bounds the tenants bulkhead_tenant_anomaly names
	// (default health.DefaultMaxFlagLabels).
	HealthMaxFlagLabels int

	// LogRedactKeys are attribute keys whose values the server's log
	// hides, besides telemetry.DefaultRedactKeys (matched as
	// telemetry.RedactOptions.Keys says: any case, '-' or '_', also as the
	// last words of a longer key).
	LogRedactKeys []string
	// LogRedactPatterns are regular expressions (RE2) whose matches the
	// server's log hides, besides the built-in ones (Bulkhead tokens,
	// bearer credentials, JWTs, e-mail addresses, URL credentials); Open
	// fails with an OptionError for one that does not compile.
	LogRedactPatterns []string
	// DisableLogRedaction passes Logger's records through unredacted. It
	// is for tests that prove the redaction does something; never set it
	// in production (docs/operations.md, Redaction).
	DisableLogRedaction bool
	// TracerProvider traces requests, the gate's steps and the store's
	// transactions (package tracing); tracing/otlp.Setup makes one from
	// the OTEL_* variables. Nil: the global provider, which traces nothing
	// unless the program set one.
	TracerProvider trace.TracerProvider
	// TraceSteps makes each of the gate's steps (authentication, the
	// policy, admission) a span of its own (ingress.Config.TraceSteps).
	TraceSteps bool
}
