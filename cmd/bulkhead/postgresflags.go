package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/server"
)

// defaultShard is the name of the shard --postgres names.
const defaultShard = "main"

// postgresFlags are the PostgreSQL flags serve and migrate share:
// --postgres, --postgres-admin, --shard NAME=URL and --shard-admin NAME=URL.
type postgresFlags struct {
	url         string   // serving role of the default shard (and the catalog's database)
	adminURL    string   // owner/migrator role of the default shard
	shards      []string // NAME=URL, serving role
	shardAdmins []string // NAME=URL, owner/migrator role
	dbPrefix    string   // postgres.Options.DatabasePrefix of every shard
}

// register adds the flags to fs.
func (f *postgresFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "postgres", "",
		`PostgreSQL URL of the default shard "main" and the catalog, as the serving role (not owner, not superuser, no BYPASSRLS)`)
	fs.StringVar(&f.adminURL, "postgres-admin", "",
		"PostgreSQL URL of the default shard as the owner/migrator role that runs DDL")
	fs.StringArrayVar(&f.shards, "shard", nil,
		"an extra PostgreSQL shard NAME=URL as the serving role (repeatable; the variable takes a comma-separated list)")
	fs.StringArrayVar(&f.shardAdmins, "shard-admin", nil,
		"the owner/migrator URL of an extra shard NAME=URL (repeatable; the variable takes a comma-separated list)")
	fs.StringVar(&f.dbPrefix, "postgres-database-prefix", "",
		"prefix of database-mode tenants' database names (at most 20 of a-z, 0-9, '_'); serve and migrate must use the same")
}

// enabled reports whether any PostgreSQL flag was given.
func (f *postgresFlags) enabled() bool {
	return f.url != "" || f.adminURL != "" || len(f.shards) > 0 || len(f.shardAdmins) > 0
}

// pgShard is one PostgreSQL shard from the command line. AdminURL is empty
// when no admin URL was given for it.
type pgShard struct {
	Name     string
	URL      string
	AdminURL string
}

// parse returns the shards the flags describe, the default shard "main"
// first and the others by name. It refuses a shard or a database prefix
// without --postgres, an invalid prefix, a malformed NAME=URL, a name given
// twice, and an admin URL for an unknown shard, with messages that say which
// flag to fix. The prefix itself is f.dbPrefix, for every shard.
func (f *postgresFlags) parse() ([]pgShard, error) {
	if err := server.ValidDatabasePrefix(f.dbPrefix); err != nil {
		return nil, fmt.Errorf("--postgres-database-prefix: %w", err)
	}
	if f.url == "" {
		switch {
		case f.adminURL != "":
			return nil, fmt.Errorf("--postgres-admin needs --postgres (the serving role's URL of the default shard)")
		case len(f.shards) > 0 || len(f.shardAdmins) > 0:
			return nil, fmt.Errorf("--shard and --shard-admin need --postgres (the default shard %q holds the catalog)", defaultShard)
		case f.dbPrefix != "":
			return nil, fmt.Errorf("--postgres-database-prefix needs --postgres (it prefixes database-mode tenants' PostgreSQL databases)")
		}
		return nil, nil
	}
	main := pgShard{Name: defaultShard, URL: f.url, AdminURL: f.adminURL}
	byName := map[string]*pgShard{defaultShard: &main}
	var extra []*pgShard
	for _, s := range f.shards {
		name, url, err := splitShard("--shard", s)
		if err != nil {
			return nil, err
		}
		if byName[name] != nil {
			if name == defaultShard {
				return nil, fmt.Errorf("--shard %s: %q is the default shard; set it with --postgres", name, name)
			}
			return nil, fmt.Errorf("--shard %s is given twice", name)
		}
		sh := &pgShard{Name: name, URL: url}
		byName[name] = sh
		extra = append(extra, sh)
	}
	admins := map[string]bool{}
	for _, s := range f.shardAdmins {
		name, url, err := splitShard("--shard-admin", s)
		if err != nil {
			return nil, err
		}
		if name == defaultShard {
			return nil, fmt.Errorf("--shard-admin %s: set the default shard's admin URL with --postgres-admin", name)
		}
		sh := byName[name]
		if sh == nil {
			return nil, fmt.Errorf("--shard-admin %s: no --shard %s=URL", name, name)
		}
		if admins[name] {
			return nil, fmt.Errorf("--shard-admin %s is given twice", name)
		}
		admins[name] = true
		sh.AdminURL = url
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Name < extra[j].Name })
	out := []pgShard{main}
	for _, sh := range extra {
		out = append(out, *sh)
	}
	return out, nil
}

// splitShard splits NAME=URL and checks NAME: 1–40 characters of a-z, 0-9
// and '-', starting with a letter.
func splitShard(flag, s string) (string, string, error) {
	name, url, ok := strings.Cut(s, "=")
	if !ok || url == "" {
		return "", "", fmt.Errorf("%s %q: use NAME=URL, e.g. %s eu=postgres://bulkhead@db-eu/bulkhead", flag, redactURL(s), flag)
	}
	if strings.Contains(name, "://") {
		return "", "", fmt.Errorf("%s %q: use NAME=URL (the shard's name is missing)", flag, redactURL(s))
	}
	if !validShardName(name) {
		return "", "", fmt.Errorf("%s %q: shard names are 1 to 40 characters of a-z, 0-9 and '-', starting with a letter", flag, name)
	}
	return name, url, nil
}

func validShardName(s string) bool {
	if len(s) < 1 || len(s) > 40 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// redactURL hides a password in s, so error messages never print one.
func redactURL(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	userinfo := s[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return s[:scheme+3] + user + ":xxxxx" + s[at:]
	}
	return s
}
