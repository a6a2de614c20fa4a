package relay_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/bulkhead-dev/bulkhead/internal/natstest"
)

func natsURL(t testing.TB) string { return natstest.URL(t) }

func unique() string { return natstest.Unique() }

func testStream(t testing.TB, nc *nats.Conn) (stream, prefix string) { return natstest.Stream(t, nc) }

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	return natstest.Connect(t, url, opts...)
}
