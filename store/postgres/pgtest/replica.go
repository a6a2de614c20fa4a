package pgtest

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReplicaEnvVar names the environment variable holding the superuser URL
// of a streaming replica of the EnvVar server (.ci/replica makes one on
// 127.0.0.1:5433).
const ReplicaEnvVar = "BULKHEAD_TEST_POSTGRES_REPLICA"

// ReplicaSkipMessage is the message replica tests skip with when
// ReplicaEnvVar (or EnvVar) is unset.
const ReplicaSkipMessage = "set " + ReplicaEnvVar + "=postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable (a streaming replica of " +
	EnvVar + "; .ci/replica makes one) to run the read-replica tests"

// replicaLock is the advisory lock key (on EnvVar's postgres database)
// that replica tests hold, shared, and tests that pause replay hold
// exclusively, so that a pause in one package's tests never stalls
// another's (packages run in parallel processes).
const replicaLock = 0x62686b7265706c // "bhkrepl"

// Replica is a test's hold on the replica.
type Replica struct {
	// ServeURL logs in as the Env's serving role on the replica, in its
	// database: Bulkhead's replica URL.
	ServeURL string
	// SuperURL logs in as superuser on the replica (ReplicaEnvVar).
	SuperURL string
	primary  string
}

// NewReplica returns e's replica for t, holding the replica lock until t
// ends (exclusive: t may pause replay, see Pause), once the replica has
// replayed everything the primary had written, e's database and roles
// included. Without ReplicaEnvVar set it skips t with ReplicaSkipMessage.
func NewReplica(t testing.TB, e Env, exclusive bool) *Replica {
	t.Helper()
	super := os.Getenv(ReplicaEnvVar)
	base := os.Getenv(EnvVar)
	if super == "" || base == "" {
		t.Skip(ReplicaSkipMessage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lock, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvVar, err)
	}
	t.Cleanup(func() { _ = lock.Close(context.Background()) }) // releases the lock
	fn := "pg_advisory_lock_shared"
	if exclusive {
		fn = "pg_advisory_lock"
	}
	if _, err := lock.Exec(ctx, `SELECT `+fn+`($1)`, int64(replicaLock)); err != nil {
		t.Fatalf("pgtest: take the replica lock: %v", err)
	}
	su, err := url.Parse(super)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", ReplicaEnvVar, err)
	}
	serve, err := url.Parse(e.ServeURL)
	if err != nil {
		t.Fatal(err)
	}
	serve.Host = su.Host
	r := &Replica{ServeURL: serve.String(), SuperURL: super, primary: base}
	r.Resume(t) // a crashed run may have left it paused
	r.CatchUp(t)
	return r
}

// CatchUp waits until the replica has replayed everything the primary had
// written when it was called (a minute at most, then t fails).
func (r *Replica) CatchUp(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := pgx.Connect(ctx, r.primary)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", EnvVar, err)
	}
	var target string
	err = p.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&target)
	_ = p.Close(context.Background())
	if err != nil {
		t.Fatalf("pgtest: primary WAL position: %v", err)
	}
	rc := r.connect(t, ctx)
	defer func() { _ = rc.Close(context.Background()) }()
	for {
		var done bool
		if err := rc.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, target).Scan(&done); err != nil {
			t.Fatalf("pgtest: replica replay position: %v", err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: the replica did not replay %s within a minute (is replay paused? see .ci/replica)", target)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Pause pauses replay on the replica until Resume or the end of t. Only a
// test that took the replica exclusively (NewReplica) may pause it.
func (r *Replica) Pause(t testing.TB) {
	t.Helper()
	t.Cleanup(func() { r.Resume(t) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc := r.connect(t, ctx)
	defer func() { _ = rc.Close(context.Background()) }()
	if _, err := rc.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatalf("pgtest: pause replay: %v", err)
	}
	for { // pausing takes effect at the next record
		var state string
		if err := rc.QueryRow(ctx, `SELECT pg_get_wal_replay_pause_state()`).Scan(&state); err != nil {
			t.Fatalf("pgtest: replay pause state: %v", err)
		}
		if state == "paused" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: replay did not pause within a minute (state %s)", state)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Resume resumes replay on the replica.
func (r *Replica) Resume(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc := r.connect(t, ctx)
	defer func() { _ = rc.Close(context.Background()) }()
	if _, err := rc.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Errorf("pgtest: resume replay: %v", err)
	}
}

// ReplayPosition returns the replica's replay position (pg_lsn text).
func (r *Replica) ReplayPosition(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc := r.connect(t, ctx)
	defer func() { _ = rc.Close(context.Background()) }()
	var lsn string
	if err := rc.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatalf("pgtest: replay position: %v", err)
	}
	return lsn
}

func (r *Replica) connect(t testing.TB, ctx context.Context) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, r.SuperURL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", ReplicaEnvVar, err)
	}
	return c
}
