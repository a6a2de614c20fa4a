package audit

import (
	"context"
	"testing"
)

// IncarnationStart finds where a tenant's current incarnation begins on its
// chain, on both engines.
func TestIncarnationStart(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		add := func(action string) int64 {
			e := entry("acme", 0)
			e.Action = action
			got, err := b.log.Append(ctx, e)
			if err != nil {
				t.Fatal(err)
			}
			return got.Seq
		}
		start := func() int64 {
			s, err := b.log.IncarnationStart(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		if got := start(); got != 0 {
			t.Fatalf("an empty chain starts after %d, want 0", got)
		}
		add("key.manage") // an earlier tenant that left no mark
		begin := add(BeginAction)
		add("key.manage")
		if got := start(); got != begin-1 {
			t.Fatalf("after a begin at %d: %d, want %d (the begin shown)", begin, got, begin-1)
		}
		off := add(OffboardAction)
		add("record.read") // recorded for the id while no tenant has it
		if got := start(); got != off {
			t.Fatalf("after an offboard at %d: %d", off, got)
		}
		again := add(BeginAction)
		if got := start(); got != again-1 {
			t.Fatalf("after the re-creation at %d: %d, want %d", again, got, again-1)
		}
		if _, err := b.log.IncarnationStart(ctx, "bad\nchain"); err == nil {
			t.Error("an invalid chain was accepted")
		}
	})
}
