package main

import (
	"strings"
	"testing"
)

func TestPostgresFlagsParse(t *testing.T) {
	f := postgresFlags{
		url:         "postgres://app@db1/bh",
		adminURL:    "postgres://owner:secret@db1/bh",
		shards:      []string{"eu=postgres://app@db-eu/bh", "asia=postgres://app@db-asia/bh"},
		shardAdmins: []string{"eu=postgres://owner@db-eu/bh"},
	}
	shards, err := f.parse()
	if err != nil {
		t.Fatal(err)
	}
	want := []pgShard{
		{"main", "postgres://app@db1/bh", "postgres://owner:secret@db1/bh"},
		{"asia", "postgres://app@db-asia/bh", ""},
		{"eu", "postgres://app@db-eu/bh", "postgres://owner@db-eu/bh"},
	}
	if len(shards) != len(want) {
		t.Fatalf("parse = %+v", shards)
	}
	for i := range want {
		if shards[i] != want[i] {
			t.Errorf("shard %d = %+v, want %+v", i, shards[i], want[i])
		}
	}
	if s, err := (&postgresFlags{}).parse(); s != nil || err != nil {
		t.Errorf("no flags: parse = %v, %v; want nothing", s, err)
	}
}

func TestPostgresFlagsRefuseMistakes(t *testing.T) {
	main := "postgres://app@db/bh"
	tests := []struct {
		name string
		f    postgresFlags
		want string
	}{
		{"an admin URL without --postgres", postgresFlags{adminURL: main}, "--postgres-admin needs --postgres"},
		{"a shard without --postgres", postgresFlags{shards: []string{"eu=" + main}}, "need --postgres"},
		{"a shard without a URL", postgresFlags{url: main, shards: []string{"eu"}}, "use NAME=URL"},
		{"a shard with an empty URL", postgresFlags{url: main, shards: []string{"eu="}}, "use NAME=URL"},
		{"a bad shard name", postgresFlags{url: main, shards: []string{"EU=" + main}}, "shard names are"},
		{"the default shard again", postgresFlags{url: main, shards: []string{"main=" + main}}, "set it with --postgres"},
		{"a shard twice", postgresFlags{url: main, shards: []string{"eu=" + main, "eu=" + main}}, "given twice"},
		{"an admin URL for an unknown shard", postgresFlags{url: main, shardAdmins: []string{"eu=" + main}}, "no --shard eu=URL"},
		{"an admin URL for main", postgresFlags{url: main, shardAdmins: []string{"main=" + main}}, "--postgres-admin"},
		{"an admin URL twice", postgresFlags{url: main, shards: []string{"eu=" + main},
			shardAdmins: []string{"eu=" + main, "eu=" + main}}, "given twice"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			_, err := tt.f.parse()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parse = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestRedactURLHidesPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://owner:s3cret@db/bh": "postgres://owner:xxxxx@db/bh",
		"postgres://owner@db/bh":        "postgres://owner@db/bh",
		"eu":                            "eu",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	for _, s := range []string{"postgres://u:pw@h/db", "postgres://u:pw@h/db?sslmode=disable"} {
		_, err := (&postgresFlags{url: "x", shards: []string{s}}).parse()
		if err == nil || strings.Contains(err.Error(), "pw") {
			t.Fatalf("error %v leaks a password", err)
		}
	}
}
