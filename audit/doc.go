// Package audit is Bulkhead's append-only, hash-chained audit log.
//
// Each tenant has a chain of its own, named by its id, and the control
// plane has ControlChain. An entry records when, who (principal), what
// (action), on what (resource), the decision and the request id — never
// data or secrets — plus its chain, its seq (1, 2, 3, … per chain) and
// prev, the hash of the entry before it (Genesis for the first). Its hash
// is the SHA-256 of a length-prefixed encoding of all of these (see
// ComputeHash), so changing any field, removing an entry or moving one
// breaks the chain where it happened. A head table records each chain's
// last seq and hash in the same transaction as the append, so a cut-off
// tail is found too.
//
// The database enforces append-only as well: triggers reject UPDATE and
// DELETE of entries (and TRUNCATE on PostgreSQL, where UPDATE, DELETE and
// TRUNCATE are also revoked from PUBLIC), and a head can only move forward
// by one. These stop mistakes and the serving code; they do not stop an
// attacker who owns the database, which is what the hashes are for.
//
//	log, err := audit.OpenSQLite(filepath.Join(dataDir, audit.FileName))
//	...
//	_, err = log.Append(ctx, audit.Entry{Chain: audit.ControlChain,
//		Principal: "operator:ops-1", Action: "tenant.suspend",
//		Resource: "tenant/acme", Decision: "allow", RequestID: rid})
//	...
//	rep, err := log.Verify(ctx) // rep.OK(), rep.Problems name chain and seq
//
// What Verify cannot detect: an attacker with write access to the database
// who rewrites a chain from some entry to its end with freshly computed
// hashes and updates the chain's head to match leaves a consistent log.
// Anchor the chains against that by exporting the heads (chain, last seq,
// hash) somewhere the database's owner cannot write — a ticket, another
// system's log, a signed message — and comparing later.
package audit
