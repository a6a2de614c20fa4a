package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/server"
)

func TestReplicaFlags(t *testing.T) {
	pg := server.Options{PostgresURL: "postgres://app@db/bh", PostgresAdminURL: "postgres://owner@db/bh",
		Shards: []server.ShardURLs{{Name: "eu", URL: "postgres://app@db-eu/bh", AdminURL: "postgres://owner@db-eu/bh"}}}
	for _, c := range []struct {
		name string
		opts server.Options
		args []string
		err  string // "" for success
	}{
		{"a replica per shard", pg, []string{"--postgres-replica", "postgres://app@r/bh", "--shard-replica", "eu=postgres://app@r-eu/bh", "--replica-max-lag", "2s"}, ""},
		{"a replica without PostgreSQL", server.Options{}, []string{"--postgres-replica", "postgres://app@r/bh"}, "need --postgres"},
		{"a replica of an unknown shard", pg, []string{"--shard-replica", "us=postgres://app@r/bh"}, "no --shard us=URL"},
		{"the default shard's replica as a shard replica", pg, []string{"--shard-replica", "main=postgres://app@r/bh"}, "--postgres-replica"},
		{"a shard replica given twice", pg, []string{"--shard-replica", "eu=postgres://a@r/bh", "--shard-replica", "eu=postgres://b@r/bh"}, "twice"},
		{"a shard replica without a name", pg, []string{"--shard-replica", "postgres://app@r/bh"}, "NAME=URL"},
		{"a negative lag", pg, []string{"--replica-max-lag", "-1s"}, "negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var f replicaFlags
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			f.register(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			opts := c.opts
			opts.Shards = append([]server.ShardURLs(nil), c.opts.Shards...)
			err := f.apply(fs, &opts)
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if opts.PostgresReplicaURL != "postgres://app@r/bh" || opts.Shards[0].ReplicaURL != "postgres://app@r-eu/bh" || opts.ReplicaMaxLag != 2*time.Second {
					t.Fatalf("options %+v", opts)
				}
				if err := opts.Validate(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want one that says %q", err, c.err)
			}
		})
	}
	t.Run("Validate names the replica flag at fault", func(t *testing.T) {
		opts := pg
		opts.Shards = []server.ShardURLs{{Name: "eu", URL: "postgres://app@db-eu/bh", AdminURL: "postgres://owner@db-eu/bh", ReplicaURL: "mysql://x"}}
		opts.PostgresReplicaURL = "http://x"
		err := flagErrors(opts.Validate())
		if err == nil || !strings.Contains(err.Error(), "--postgres-replica:") || !strings.Contains(err.Error(), "--shard-replica eu=URL:") {
			t.Fatalf("err = %v", err)
		}
	})
}
