package relay_test

import (
	"errors"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestSubjectRefusesWhatCouldReachAnotherTenant: a collection or prefix
// that is not one safe token (dots, wildcards, white space, control
// characters, non-ASCII) is refused, never escaped into another subject.
func TestSubjectRefusesWhatCouldReachAnotherTenant(t *testing.T) {
	acme := tenant.MustParse("acme")
	if s, err := relay.Subject("bulkhead", acme, "orders_2"); err != nil || s != "bulkhead.acme.orders_2" {
		t.Fatalf("Subject = %q, %v", s, err)
	}
	if s, err := relay.Subject("prod.bulkhead", acme, "orders"); err != nil || s != "prod.bulkhead.acme.orders" {
		t.Fatalf("Subject with a two-token prefix = %q, %v", s, err)
	}
	for _, tc := range []struct{ prefix, collection string }{
		{"bulkhead", "orders.globex"}, {"bulkhead", "*"}, {"bulkhead", ">"}, {"bulkhead", "a b"},
		{"bulkhead", "a\x00b"}, {"bulkhead", "a\r\nPUB x"}, {"bulkhead", ""}, {"bulkhead", "ordérs"},
		{"bulkhead.>", "orders"}, {"", "orders"}, {"bulkhead.", "orders"}, {"a\tb", "orders"},
	} {
		if s, err := relay.Subject(tc.prefix, acme, tc.collection); !errors.Is(err, relay.ErrSubject) {
			t.Errorf("Subject(%q, acme, %q) = %q, %v; want ErrSubject", tc.prefix, tc.collection, s, err)
		}
	}
}

func TestMsgIDNamesTheIncarnation(t *testing.T) {
	acme := tenant.MustParse("acme")
	at := time.UnixMicro(1_700_000_000_123_456)
	if got := relay.MsgID(acme, at, 42); got != "acme.1700000000123456.42" {
		t.Fatalf("MsgID = %q", got)
	}
	if relay.MsgID(acme, at, 1) == relay.MsgID(acme, at.Add(time.Microsecond), 1) {
		t.Fatal("two incarnations' first events share a msg id: the second would be dropped as a duplicate")
	}
}
