package main

import (
	"github.com/spf13/pflag"

	"github.com/bulkhead-dev/bulkhead/relay"
	"github.com/bulkhead-dev/bulkhead/server"
)

// natsFlags are serve's NATS JetStream relay flags (docs/events.md).
type natsFlags struct {
	url, stream, prefix string
}

func (f *natsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "nats", "",
		"NATS URL (nats://host:4222) to relay every tenant's events to JetStream; default: no relay")
	fs.StringVar(&f.stream, "nats-stream", relay.DefaultStream,
		"JetStream stream of the relayed events, created if missing")
	fs.StringVar(&f.prefix, "nats-subject-prefix", relay.DefaultSubjectPrefix,
		"first token of the subjects <prefix>.<tenant>.<collection>; deployments sharing a NATS server need different ones")
}

func (f *natsFlags) apply(o *server.Options) {
	o.NATSURL, o.NATSStream, o.NATSSubjectPrefix = f.url, f.stream, f.prefix
}
