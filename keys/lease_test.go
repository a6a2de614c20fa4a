package keys

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// leaseStores returns a key store on SQLite and, with
// BULKHEAD_TEST_POSTGRES, one on PostgreSQL.
func leaseStores(t *testing.T) map[string]*SQLStore {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "keys.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	lite, err := OpenSQLStore(ctx, db, false)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*SQLStore{"sqlite": lite}
	if os.Getenv("BULKHEAD_TEST_POSTGRES") == "" {
		t.Log("PostgreSQL part skipped: set BULKHEAD_TEST_POSTGRES to a PostgreSQL superuser URL to run it")
		return out
	}
	env := pgtest.New(t)
	pdb, err := sql.Open("pgx", env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pdb.Close() })
	pg, err := OpenSQLStore(ctx, pdb, true)
	if err != nil {
		t.Fatal(err)
	}
	out["postgres"] = pg
	return out
}

// TestAJobIsLeasedToOneWorkerAtATime: a worker holds a running job
// until its lease runs out; another cannot claim it meanwhile, can once
// it has run out, and then the first one's save is refused and changes
// nothing.
func TestAJobIsLeasedToOneWorkerAtATime(t *testing.T) {
	for name, s := range leaseStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			j := Job{ID: newJobID(), Kind: JobRotate, State: JobRunning, Tenant: "acme", Pass: 1, CreatedAt: t0}
			if err := s.SaveJob(ctx, j); err != nil {
				t.Fatal(err)
			}
			claim := func(owner string, now time.Time) (Job, bool) {
				t.Helper()
				got, ok, err := s.claimJob(ctx, j.ID, owner, now, now.Add(JobLease))
				if err != nil {
					t.Fatal(err)
				}
				return got, ok
			}
			if _, ok := claim("a", t0); !ok {
				t.Fatal("a cannot claim a job nobody holds")
			}
			if _, ok := claim("b", t0.Add(JobLease-time.Second)); ok {
				t.Fatal("b claimed a job while a's lease runs")
			}
			if _, ok := claim("a", t0.Add(JobLease-time.Second)); !ok {
				t.Fatal("a cannot renew its own lease")
			}
			// a saves progress (and its lease runs a minute from then).
			j.Resealed = 10
			if err := s.saveLeased(ctx, j, "a", t0.Add(10*time.Second).Add(JobLease)); err != nil {
				t.Fatal(err)
			}
			if _, ok := claim("b", t0.Add(JobLease+5*time.Second)); ok {
				t.Fatal("b claimed a job whose lease a's save extended")
			}
			// a stalls; its lease runs out and b takes over from a's progress.
			got, ok := claim("b", t0.Add(3*JobLease))
			if !ok || got.Resealed != 10 {
				t.Fatalf("b's claim after a's lease ran out: %v, job %+v", ok, got)
			}
			got.Resealed = 14
			if err := s.saveLeased(ctx, got, "b", t0.Add(3*JobLease).Add(JobLease)); err != nil {
				t.Fatal(err)
			}
			// a wakes up and saves its older step: refused, nothing changes.
			j.Resealed = 12
			if err := s.saveLeased(ctx, j, "a", t0.Add(3*JobLease).Add(JobLease)); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("a's save after b took over: %v, want ErrLeaseLost", err)
			}
			if now, _ := s.Job(ctx, j.ID); now.Resealed != 14 {
				t.Fatalf("a's refused save changed the job: resealed %d, want b's 14", now.Resealed)
			}
			// A job that ended is nobody's to claim.
			got.State = JobDone
			if err := s.saveLeased(ctx, got, "b", t0.Add(3*JobLease)); err != nil {
				t.Fatal(err)
			}
			if _, ok := claim("a", t0.Add(10*JobLease)); ok {
				t.Fatal("a claimed a job that is done")
			}
		})
	}
}

// TestJobLeasesReachATableMadeBeforeThem: a key store whose job table
// predates leases gets the lease columns when opened, and its running
// jobs can be claimed.
func TestJobLeasesReachATableMadeBeforeThem(t *testing.T) {
	ctx := context.Background()
	lite, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	engines := map[string]struct {
		db       *sql.DB
		postgres bool
		old      string // the job table as it was made before leases
	}{"sqlite": {lite, false, sqliteJobsSQL}}
	if os.Getenv("BULKHEAD_TEST_POSTGRES") != "" {
		pdb, err := sql.Open("pgx", pgtest.New(t).AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pdb.Close()
		engines["postgres"] = struct {
			db       *sql.DB
			postgres bool
			old      string
		}{pdb, true, "CREATE SCHEMA IF NOT EXISTS bulkhead_keys; " + pgJobsSQL}
	}
	for name, e := range engines {
		t.Run(name, func(t *testing.T) {
			if _, err := e.db.ExecContext(ctx, e.old); err != nil {
				t.Fatal(err)
			}
			table := "key_jobs"
			if e.postgres {
				table = "bulkhead_keys.key_jobs"
			}
			if _, err := e.db.ExecContext(ctx, `INSERT INTO `+table+` (id, state, body) VALUES ('job_old', 'running', '{"id":"job_old","kind":"seal","state":"running","scanned":3,"resealed":2}')`); err != nil {
				t.Fatal(err)
			}
			var s *SQLStore
			for range 2 { // opening again changes nothing
				if s, err = OpenSQLStore(ctx, e.db, e.postgres); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()
			j, ok, err := s.claimJob(ctx, "job_old", "w", now, now.Add(JobLease))
			if err != nil || !ok || j.Resealed != 2 {
				t.Fatalf("claim of a job saved before leases: %v %v %+v", ok, err, j)
			}
		})
	}
}
