package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/server"
)

// replicaFlags are serve's read-replica flags: --postgres-replica URL,
// --shard-replica NAME=URL and --replica-max-lag.
type replicaFlags struct {
	url    string   // the default shard's replica, as the serving role
	shards []string // NAME=URL of extra shards' replicas
}

// register adds the flags to fs.
func (f *replicaFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "postgres-replica", "",
		`PostgreSQL URL of a streaming replica of the default shard, as the serving role: it serves the record API's reads when fresh enough (reads with Bulkhead-Read-After wait for nothing: a replica that has not replayed the token's commit leaves them to the primary)`)
	fs.StringArrayVar(&f.shards, "shard-replica", nil,
		"a streaming replica of an extra shard NAME=URL, as the serving role (repeatable; the variable takes a comma-separated list)")
	fs.Duration("replica-max-lag", 0,
		"how far behind its primary a replica may be and still serve reads without a read-after token (0: the default, 5s)")
}

// apply puts the flags into opts, whose shards are already set. It refuses
// a replica without --postgres, a replica of an unknown or the default
// shard given with --shard-replica, and one given twice.
func (f *replicaFlags) apply(fs *pflag.FlagSet, opts *server.Options) error {
	lag, err := fs.GetDuration("replica-max-lag")
	if err != nil {
		return err
	}
	if lag < 0 {
		return fmt.Errorf("--replica-max-lag must not be negative, got %s", lag)
	}
	if opts.PostgresURL == "" && (f.url != "" || len(f.shards) > 0) {
		return fmt.Errorf("--postgres-replica and --shard-replica need --postgres (replicas are PostgreSQL streaming replicas)")
	}
	opts.PostgresReplicaURL, opts.ReplicaMaxLag = f.url, lag
	seen := map[string]bool{}
	for _, s := range f.shards {
		name, url, err := splitShard("--shard-replica", s)
		if err != nil {
			return err
		}
		if name == defaultShard {
			return fmt.Errorf("--shard-replica %s: give the default shard's replica with --postgres-replica", name)
		}
		if seen[name] {
			return fmt.Errorf("--shard-replica %s is given twice", name)
		}
		seen[name] = true
		found := false
		for i := range opts.Shards {
			if opts.Shards[i].Name == name {
				opts.Shards[i].ReplicaURL, found = url, true
			}
		}
		if !found {
			return fmt.Errorf("--shard-replica %s: no --shard %s=URL", name, name)
		}
	}
	return nil
}
