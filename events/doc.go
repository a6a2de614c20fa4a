// Package events serves each tenant's change feed: the events of its
// transactional outbox (store.Event, appended in the same transaction as
// every record write and delete) as a stream of server-sent events.
//
// A Handler answers GET with text/event-stream for the tenant in the
// request's context, which a gate (package ingress) put there from the
// credential; no header, query or path names the tenant. Each event is
//
//	id: <position>
//	event: change
//	data: {"seq":7,"tenant":"acme","collection":"notes","id":"n1","op":"update","version":2,"at":"..."}
//
// # Positions
//
// The id of an event is its position: opaque, and authenticated with an
// HMAC-SHA256 (Positions) over the tenant, the start of the tenant's
// incarnation and the event's Seq. A client resumes after it with the
// Last-Event-ID header (an EventSource sends it when it reconnects) or
// ?after=<position>; a forged, truncated or changed position, another
// tenant's, or one of an earlier tenant of the same id (deleted and
// created again) is refused (400 invalid_event_position), never read as
// "from the start". A position whose following events the outbox has
// trimmed is 410 events_expired: the client must read the data afresh.
// Without a position a stream starts after the tenant's last event;
// ?from=oldest starts at the oldest event the outbox still holds.
//
// # Guarantees
//
// Per tenant, events arrive in Seq order, which is commit order, with no
// gap and no duplicate, across reconnects with the last id received.
// ?collections=a,b delivers only those collections' events. Every read is
// a read-only transaction of at most one page (store.MaxEventPage), of the
// stream's own tenant, entered again from the tenant id the stream was
// opened for (tenant.WithID): a stream cannot see another tenant's
// events.
//
// # Waking and polling
//
// A Hub wakes a tenant's streams when its events commit: plug Hub.Notify
// into store.Config.EventsCommitted. Notify never blocks (a wake-up buffer
// of one per stream), and each stream runs on its own request goroutine,
// so a slow or stuck client delays no other stream; its writes have a
// deadline (Handler.WriteTimeout) after which it is dropped. So that
// commits made by another instance on the same PostgreSQL reach this
// instance's streams, run Hub.Poll (every second, say: it wakes each
// tenant's streams together, and they share one read) and give the
// Handler a negative PollInterval; or leave Hub.Poll out and let each
// stream read every PollInterval (default one second) on its own. Streams
// of one tenant at one position share each read, and streams of one
// credential each check. A ": ping" comment is sent every Heartbeat
// (default 15 s).
//
// # Limits
//
// The Hub bounds open streams per tenant (default 32, ErrTooManyStreams:
// 429 too_many_streams) and per instance (default 10,000, ErrHubFull: 503
// overloaded).
package events
