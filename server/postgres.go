package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
)

// MainShard is the name of the PostgreSQL shard given by
// Options.PostgresURL; it also holds the catalog.
const MainShard = "main"

// ShardURLs is one more PostgreSQL shard.
type ShardURLs struct {
	// Name names the shard in placements: 1–40 characters of a-z, 0-9
	// and '-', starting with a letter; not "main" or "local".
	Name string
	// URL connects as the serving role: not the owner of the tables, not
	// superuser, no BYPASSRLS.
	URL string
	// AdminURL connects as the owner/migrator role, which runs the DDL.
	AdminURL string
	// ReplicaURL is a streaming replica of the shard's server, as the
	// serving role; empty: none.
	ReplicaURL string
}

var shardName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// ValidShardName reports whether name can name a shard.
func ValidShardName(name string) error {
	if !shardName.MatchString(name) {
		return fmt.Errorf("invalid shard name %q: use 1 to 40 characters of a-z, 0-9 and '-', starting with a letter", name)
	}
	if name == MainShard || name == LocalShard {
		return fmt.Errorf("shard name %q is reserved (%q is the shard of Options.PostgresURL, %q the SQLite one)", name, MainShard, LocalShard)
	}
	return nil
}

// MaxDatabasePrefix is the longest Options.PostgresDatabasePrefix.
const MaxDatabasePrefix = 20

// ValidDatabasePrefix reports whether prefix can be put before tenant
// database names (Options.PostgresDatabasePrefix, the rule of
// postgres.Options.DatabasePrefix): at most MaxDatabasePrefix characters of
// a-z, 0-9 and '_'; empty means no prefix.
func ValidDatabasePrefix(prefix string) error {
	ok := len(prefix) <= MaxDatabasePrefix
	for i := 0; ok && i < len(prefix); i++ {
		c := prefix[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	if !ok {
		return fmt.Errorf("invalid database prefix %q: use at most %d characters of a-z, 0-9 and '_'",
			clip(prefix), MaxDatabasePrefix)
	}
	return nil
}

// Validate checks the storage settings without connecting anywhere: a
// PostgreSQL serving URL needs an admin URL (and the reverse), extra shards
// and a database prefix need PostgreSQL, the prefix is valid, and each shard
// has a valid, unique name and both URLs. Its errors are *OptionError,
// one for each setting at fault (errors.Join'ed).
func (o Options) Validate() error {
	if err := o.validateReplicas(); err != nil {
		return err
	}
	if err := ValidDatabasePrefix(o.PostgresDatabasePrefix); err != nil {
		return &OptionError{Field: "PostgresDatabasePrefix", Err: err}
	}
	if o.PostgresURL == "" && o.PostgresAdminURL == "" {
		if len(o.Shards) > 0 {
			return &OptionError{Field: "Shards", Err: errors.New("shards need PostgreSQL: set PostgresURL and PostgresAdminURL too (the catalog and the main shard live there)")}
		}
		if o.PostgresDatabasePrefix != "" {
			return &OptionError{Field: "PostgresDatabasePrefix", Err: errors.New("a database prefix needs PostgreSQL: set PostgresURL and PostgresAdminURL too (SQLite tenant files are not prefixed)")}
		}
		return nil
	}
	if o.PostgresURL == "" || o.PostgresAdminURL == "" {
		missing := "PostgresAdminURL"
		if o.PostgresURL == "" {
			missing = "PostgresURL"
		}
		return &OptionError{Field: missing, Err: errors.New("missing: PostgreSQL needs two URLs, the serving role's and the owner role's (see README, Running on PostgreSQL)")}
	}
	var errs []error
	check := func(e *OptionError, u string) {
		if err := checkPostgresURL(u); err != nil {
			e.Err = err
			errs = append(errs, e)
		}
	}
	check(&OptionError{Field: "PostgresURL"}, o.PostgresURL)
	check(&OptionError{Field: "PostgresAdminURL"}, o.PostgresAdminURL)
	seen := map[string]bool{}
	for _, s := range o.Shards {
		if err := ValidShardName(s.Name); err != nil {
			errs = append(errs, &OptionError{Field: "Shards", Shard: s.Name, Err: err})
			continue
		}
		if seen[s.Name] {
			errs = append(errs, &OptionError{Field: "Shards", Shard: s.Name, Err: errors.New("the shard is given twice")})
			continue
		}
		seen[s.Name] = true
		switch {
		case s.URL == "":
			errs = append(errs, &OptionError{Field: "Shards", Shard: s.Name, Err: errors.New("the shard has an admin URL but no serving URL")})
		case s.AdminURL == "":
			errs = append(errs, &OptionError{Field: "Shards", Shard: s.Name, Admin: true, Err: errors.New("the shard has no admin URL (its owner role's)")})
		default:
			check(&OptionError{Field: "Shards", Shard: s.Name}, s.URL)
			check(&OptionError{Field: "Shards", Shard: s.Name, Admin: true}, s.AdminURL)
		}
	}
	return errors.Join(errs...)
}

// checkPostgresURL accepts postgres:// and postgresql:// URLs (pgx also
// takes key=value strings; those are accepted as they are).
func checkPostgresURL(s string) error {
	if !strings.Contains(s, "://") {
		if strings.Contains(s, "=") {
			return nil
		}
		return errors.New("not a PostgreSQL URL (use postgres://user@host:5432/dbname)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a PostgreSQL URL: %s", redact(err.Error(), s))
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("scheme %q: use postgres://user@host:5432/dbname", u.Scheme)
	}
	return nil
}

// redact keeps a URL's password out of an error message.
func redact(msg, raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			return strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// openPostgres opens every shard, checks that no serving role can bypass
// row-level security, and opens the catalog on the main shard's owner pool.
func openPostgres(ctx context.Context, opts Options, log *slog.Logger) (*catalog.Catalog, map[string]store.Backend, error) {
	shards := append([]ShardURLs{{Name: MainShard, URL: opts.PostgresURL, AdminURL: opts.PostgresAdminURL, ReplicaURL: opts.PostgresReplicaURL}}, opts.Shards...)
	replicaMetrics := postgres.NewReplicaMetrics() // one for every shard's replica
	backends := map[string]store.Backend{}
	closeAll := func() {
		for _, b := range backends {
			b.Close()
		}
	}
	var main *postgres.Backend
	for _, s := range shards {
		b, err := postgres.Open(ctx, postgres.Shard{Name: s.Name, URL: s.URL, AdminURL: s.AdminURL}, postgres.Options{
			MaxOpenDatabases: opts.MaxOpenDatabases,
			MaxConns:         opts.PostgresMaxConns,
			DatabasePrefix:   opts.PostgresDatabasePrefix,
			Replica:          replicaOptions(s.ReplicaURL, opts, replicaMetrics, log),
		})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open shard %s: %w", s.Name, err)
		}
		backends[s.Name] = b
		if s.Name == MainShard {
			main = b
		}
		if err := b.CheckServingRole(ctx); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("refusing to serve: shard %s: %w", s.Name, err)
		}
		log.Info("shard ready", slog.String("shard", s.Name), slog.String("serving_role", b.ServingRole()),
			slog.String("database_prefix", opts.PostgresDatabasePrefix))
	}
	cat, err := catalog.OpenPostgres(ctx, main.OperatorPool(), catalog.Options{Logger: log, Now: opts.Now})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return cat, backends, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
