package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
)

// migrateFlags are the flags of migrate status and migrate up.
type migrateFlags struct {
	g           *globals // --data-dir: the SQLite data directory
	pg          postgresFlags
	dir         string
	concurrency int
	json        bool
}

func newMigrateCommand(g *globals) *cobra.Command {
	mf := &migrateFlags{g: g}
	cmd := groupCommand("migrate", "Apply your SQL migrations to every tenant placement")
	cmd.Long = `Apply a directory of versioned SQL migrations (NNNN_name.sql) to every
placement of the fleet.

On PostgreSQL (--postgres): once per shard for pooled tables (with row-level
security policies for tables that have a tenant_id column), once per schema
tenant and once per database tenant. migrate talks to PostgreSQL directly
(not to a server): give it the shards with the same flags as serve. DDL runs
as the owner/migrator role (--postgres-admin, --shard-admin); without them
the --postgres and --shard URLs are used.

On the embedded default (--data-dir, the directory bulkhead serve uses):
once per database-mode tenant, in the tenant's own file. SQLite pooled
tenants share one file where no team SQL runs, so they have no team tables
and are not migration units: status and up do not list them. One process
owns a data directory: migrate takes its lock, and refuses while a server
(or another migrate) holds it; stop the server, migrate, start it again.

Each placement records its own version, in a table of its own written in
the transaction of each migration; status and up read it there (on
PostgreSQL a few statements per shard plus one connection per database
tenant, on SQLite one read per tenant file), so what they show cannot
disagree with what the placement holds.`
	f := cmd.PersistentFlags()
	mf.pg.register(f)
	f.StringVar(&mf.dir, "migrations", "", "directory of the migrations, files NNNN_name.sql (required)")
	f.IntVar(&mf.concurrency, "concurrency", migrate.DefaultConcurrency, "units migrated at once")
	f.BoolVar(&mf.json, "json", false, "print the report as JSON instead of a table")
	cmd.AddCommand(newMigrateStatusCommand(mf), newMigrateUpCommand(mf))
	return cmd
}

func newMigrateStatusCommand(mf *migrateFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each placement's migration version against the latest",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, closeFleet, err := mf.open(cmd)
			if err != nil {
				return err
			}
			defer closeFleet()
			rep, err := f.Status(cmd.Context())
			if err != nil {
				return err
			}
			return mf.print(cmd.OutOrStdout(), rep.Units, nil)
		},
	}
}

func newMigrateUpCommand(mf *migrateFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "up",
		Short: "Apply the migrations to every placement that is behind",
		Long: `Apply the migrations to every placement that is behind: the shards' pooled
tables first, then schema and database tenants, --concurrency at a time. If a
placement fails, no further one starts, those in flight finish, and the
command exits 1 naming the failed tenant; every other placement stays on the
version it had or reached. Run it again after fixing the cause.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mf.concurrency < 1 {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--concurrency must be at least 1, got %d", mf.concurrency)}
			}
			f, closeFleet, err := mf.open(cmd)
			if err != nil {
				return err
			}
			defer closeFleet()
			prog := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), mf.json)
			rep, runErr := f.Migrate(cmd.Context(), fleet.MigrateOptions{Concurrency: mf.concurrency, Progress: prog.update})
			prog.finish()
			if err := mf.print(cmd.OutOrStdout(), rep, runErr); err != nil {
				return err
			}
			return runErr
		},
	}
}

// open checks the flags, reads the migrations and opens the fleet: on
// PostgreSQL with --postgres, else in the SQLite --data-dir. The returned
// function closes it.
func (mf *migrateFlags) open(cmd *cobra.Command) (*fleet.Fleet, func(), error) {
	usage := func(err error) error { return &usageError{cmd: cmd.CommandPath(), err: err} }
	if mf.dir == "" {
		return nil, nil, usage(errors.New("--migrations DIR is required (a directory of NNNN_name.sql files)"))
	}
	sqliteDir := ""
	var shards []pgShard
	switch {
	case mf.pg.url != "" || mf.pg.enabled():
		var err error
		if shards, err = mf.pg.parse(); err != nil {
			return nil, nil, usage(err)
		}
	case cmd.Flags().Changed("data-dir"):
		sqliteDir = mf.g.dataDir
	default:
		return nil, nil, usage(errors.New("--postgres URL is required for PostgreSQL shards (the catalog is on the default shard), " +
			"or --data-dir DIR for the embedded SQLite default (the directory bulkhead serve uses)"))
	}
	ms, err := migrate.Load(os.DirFS(mf.dir))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", mf.dir, err)
	}
	if sqliteDir != "" {
		return openSQLiteFleet(sqliteDir, ms, mf.concurrency)
	}
	return mf.openPostgresFleet(cmd.Context(), shards, ms)
}

// openPostgresFleet opens the catalog on the default shard and every shard
// as its admin role.
func (mf *migrateFlags) openPostgresFleet(ctx context.Context, shards []pgShard, ms []migrate.Migration) (*fleet.Fleet, func(), error) {
	cat, closeCat, err := openMigrationCatalog(ctx, shards[0])
	if err != nil {
		return nil, nil, err
	}
	backends := map[string]store.Backend{}
	closeAll := func() {
		for _, b := range backends {
			b.Close()
		}
		closeCat()
	}
	for _, s := range shards {
		// The serving URL matters: new tables are granted to its role.
		b, err := postgres.Open(ctx, postgres.Shard{Name: s.Name, URL: s.URL, AdminURL: s.adminURL()},
			postgres.Options{MaxConns: int32(mf.concurrency) + 1, DatabasePrefix: mf.pg.dbPrefix})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open shard %s: %w", s.Name, err)
		}
		backends[s.Name] = b
	}
	f, err := fleet.New(fleet.Config{Catalog: cat, Backends: backends, Migrations: ms})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return f, func() { f.Close(); closeCat() }, nil
}

// adminURL is the URL DDL runs with: the admin URL if given, else the
// serving one.
func (s pgShard) adminURL() string {
	if s.AdminURL != "" {
		return s.AdminURL
	}
	return s.URL
}

// openMigrationCatalog opens the catalog on the default shard's database
// as its admin role, on a small pool of its own.
func openMigrationCatalog(ctx context.Context, main pgShard) (*catalog.Catalog, func(), error) {
	cfg, err := pgxpool.ParseConfig(main.adminURL())
	if err != nil {
		return nil, nil, fmt.Errorf("--postgres-admin %s: %w", redactURL(main.adminURL()), err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", redactURL(main.adminURL()), err)
	}
	cat, err := catalog.OpenPostgres(ctx, pool, catalog.Options{})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return cat, func() { cat.Close(); pool.Close() }, nil
}

// print writes a Status or Run report as a table and a summary, or as
// JSON.
func (mf *migrateFlags) print(w io.Writer, rep migrate.Report, runErr error) error {
	if mf.json {
		out := struct {
			migrate.Report
			ElapsedMS int64  `json:"elapsed_ms"`
			Error     string `json:"error,omitempty"`
		}{Report: rep, ElapsedMS: rep.Elapsed.Milliseconds()}
		if out.Units == nil {
			out.Units = []migrate.UnitStatus{}
		}
		if runErr != nil {
			out.Error = runErr.Error()
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	rows := make([][]string, len(rep.Units))
	for i, u := range rep.Units {
		rows[i] = []string{u.Name, fmt.Sprint(u.Version), fmt.Sprint(u.Latest), u.State}
	}
	if err := writeTable(w, []string{"UNIT", "VERSION", "LATEST", "STATE"}, rows); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, summary(rep))
	return err
}

// summary is one line: how many units, in which states, the latest version.
func summary(rep migrate.Report) string {
	var parts []string
	for _, s := range []string{migrate.StateMigrated, migrate.StateCurrent, migrate.StateBehind,
		migrate.StateAhead, migrate.StateFailed, migrate.StatePending} {
		if n := rep.Counts[s]; n > 0 {
			label := s
			if s == migrate.StatePending {
				label = "not started"
			}
			parts = append(parts, fmt.Sprintf("%d %s", n, label))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no units")
	}
	return fmt.Sprintf("%d units: %s (latest version %d, %s)", len(rep.Units), strings.Join(parts, ", "),
		rep.Latest, rep.Elapsed.Round(time.Millisecond))
}

// progress shows a Run's progress: a bar when stdout is a terminal, plain
// lines otherwise (on stderr with --json, so stdout stays JSON).
type progress struct {
	bar   *progressbar.ProgressBar
	lines io.Writer
	tty   io.Writer
}

func newProgress(stdout, stderr io.Writer, asJSON bool) *progress {
	if isTerminal(stdout) && !asJSON {
		return &progress{tty: stdout}
	}
	if asJSON {
		return &progress{lines: stderr}
	}
	return &progress{lines: stdout}
}

// update is the Run's Progress callback; calls are serialized.
func (p *progress) update(ev migrate.Progress) {
	if p.tty != nil {
		if p.bar == nil {
			p.bar = progressbar.NewOptions(ev.Total,
				progressbar.OptionSetWriter(p.tty),
				progressbar.OptionSetDescription("migrating"),
				progressbar.OptionShowCount(),
				progressbar.OptionSetItsString("units"),
				progressbar.OptionShowIts(),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
		}
		if ev.Done {
			_ = p.bar.Add(1)
		}
		return
	}
	if !ev.Done {
		return
	}
	if ev.Err != nil {
		fmt.Fprintf(p.lines, "[%d/%d] %s failed at version %d: %v\n", ev.Index, ev.Total, ev.Unit, ev.To, ev.Err)
		return
	}
	fmt.Fprintf(p.lines, "[%d/%d] %s %d -> %d\n", ev.Index, ev.Total, ev.Unit, ev.From, ev.To)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
