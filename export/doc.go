// Package export streams one tenant's records out as NDJSON and sums up
// what was streamed, for tenant exports and offboarding.
//
// An export is every record of the tenant in the context, one JSON object
// per line in exactly the form GET /v1/collections/{c}/records/{id}
// answers (the same bytes, newline included), collections in name order
// and, within one, ids in the store's ascending order. Write reads it page
// by page through store.Tx (so a store that encrypts records hands them
// over decrypted) and holds at most one page in memory, whatever the
// tenant's size.
//
// # Resuming
//
// A Position names the last record a reader has: "<collection>/<id>",
// the collection and id of the last complete line. An export started
// after it holds exactly the records that sort after it, whether or not
// that record still exists. A position needs no secret: it only says where
// to start within the caller's own tenant.
//
// # Consistency
//
// Each page is read in its own short read-only transaction; no snapshot is
// held for the whole export (which would pin a database connection and,
// on SQLite, the write-ahead log). An export therefore guarantees:
//
//   - every record that exists for the whole export and does not change
//     appears exactly once;
//   - no record appears twice: positions only move forward;
//   - a record written, changed or deleted during the export appears at
//     most once, in the state its page was read in (or not at all, if its
//     id sorts before the export's position when it is written);
//   - a collection first created during the export does not appear (the
//     collections are listed once, at the start).
//
// For a point-in-time export, stop the writes first: suspend the tenant
// (bulkhead tenant offboard does).
//
// Every record comes through a transaction the router scopes to the tenant
// in the context: another tenant's record, even one with the same
// collection and id, cannot appear.
package export
