package keys

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/pgddl"
)

// Job kinds.
const (
	// JobRotate re-seals one tenant's records under its new keys after
	// Manager.Rotate, then retires the old keys.
	JobRotate = "rotate"
	// JobSeal re-seals every tenant's records stored in the clear (written
	// before encryption was turned on): the upgrade.
	JobSeal = "seal"
)

// Job states.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Job is a background re-encryption and its progress, kept in the key
// store so that it resumes after a crash where it stopped.
type Job struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	State  string `json:"state"`
	Tenant string `json:"tenant,omitempty"` // the tenant of a rotation; the current one of a seal job
	// Key is the data key a rotation made primary: a tenant whose primary
	// key is another one is not the tenant this job rotates.
	Key uint32 `json:"key,omitempty"`
	// Pass is 1, then 2 for a rotation: the second pass, run once the
	// keys of every instance have expired from their caches, re-seals
	// what a stale instance wrote during the first.
	Pass        int       `json:"pass,omitempty"`
	Listed      bool      `json:"listed,omitempty"`      // Collections holds Tenant's collections
	Attempts    int       `json:"attempts,omitempty"`    // failed steps in a row
	Collections []string  `json:"collections,omitempty"` // of Tenant, still to do (the first in progress)
	After       string    `json:"after,omitempty"`       // the last record id done in Collections[0]
	Scanned     int64     `json:"scanned"`
	Resealed    int64     `json:"resealed"`
	Destroyed   []string  `json:"destroyed_keys,omitempty"`
	Error       string    `json:"error,omitempty"`
	NotBefore   time.Time `json:"not_before,omitempty"` // pass 2 waits for it
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ErrNoJob: no job has that id.
var ErrNoJob = errors.New("no such job")

const sqliteJobsSQL = `CREATE TABLE IF NOT EXISTS key_jobs (
	id    TEXT PRIMARY KEY,
	state TEXT NOT NULL,
	body  TEXT NOT NULL
) WITHOUT ROWID`

const pgJobsSQL = `CREATE TABLE IF NOT EXISTS bulkhead_keys.key_jobs (
	id    text PRIMARY KEY,
	state text NOT NULL,
	body  text NOT NULL
)`

// The lease columns, added to a table made before leases existed: the
// worker that holds a job's lease steps it alone (see claimJob).
const (
	sqliteLeaseOwnerSQL = `ALTER TABLE key_jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT ''`
	sqliteLeaseUntilSQL = `ALTER TABLE key_jobs ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0`
	pgLeaseSQL          = `ALTER TABLE bulkhead_keys.key_jobs
	ADD COLUMN IF NOT EXISTS lease_owner text NOT NULL DEFAULT '',
	ADD COLUMN IF NOT EXISTS lease_until bigint NOT NULL DEFAULT 0`
)

func (s *SQLStore) jobsTable(ctx context.Context) error {
	if s.postgres {
		return pgddl.Apply(ctx, s.db, "bulkhead_keys", pgJobsSQL+";\n"+pgLeaseSQL)
	}
	if _, err := s.db.ExecContext(ctx, sqliteJobsSQL); err != nil {
		return err
	}
	for col, ddl := range map[string]string{"lease_owner": sqliteLeaseOwnerSQL, "lease_until": sqliteLeaseUntilSQL} {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('key_jobs') WHERE name = ?`, col).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if _, err := s.db.ExecContext(ctx, ddl); err != nil {
			return err
		}
	}
	return nil
}

// JobLease is how long a worker holds a job it claimed without stepping
// it again: another instance's worker takes over a job whose worker has
// stopped (or stalled) once its lease has run out.
const JobLease = time.Minute

// ErrLeaseLost: the worker's lease on a job ran out and another worker
// holds it now; the first one's progress is not saved over the second's.
var ErrLeaseLost = errors.New("keys: the job's lease is another worker's")

// claimJob takes, or renews, owner's lease on the running job id until
// until, unless another worker's lease is still valid at now; it returns
// the job as last saved and whether owner holds it (one statement: the
// claim returns the body).
func (s *SQLStore) claimJob(ctx context.Context, id, owner string, now, until time.Time) (Job, bool, error) {
	var body string
	err := s.db.QueryRowContext(ctx, s.q(`UPDATE key_jobs SET lease_owner = ?, lease_until = ?
		WHERE id = ? AND state = ? AND (lease_owner = ? OR lease_until <= ?) RETURNING body`),
		owner, until.UnixMilli(), id, JobRunning, owner, now.UnixMilli()).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("keys: claim job %s: %w", id, err)
	}
	var j Job
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		return Job{}, false, fmt.Errorf("keys: claim job %s: %w", id, err)
	}
	return j, true, nil
}

// runningJobIDs returns the ids of the jobs still running, oldest first.
func (s *SQLStore) runningJobIDs(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id FROM key_jobs WHERE state = ? ORDER BY id`), JobRunning)
	if err != nil {
		return nil, fmt.Errorf("keys: running jobs: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// releaseJobs ends owner's leases.
func (s *SQLStore) releaseJobs(ctx context.Context, owner string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE key_jobs SET lease_until = 0 WHERE lease_owner = ?`), owner); err != nil {
		return fmt.Errorf("keys: release job leases: %w", err)
	}
	return nil
}

// saveLeased saves j, stepped by owner, and extends owner's lease to
// until; it fails with ErrLeaseLost, saving nothing, if another worker
// has taken the job over.
func (s *SQLStore) saveLeased(ctx context.Context, j Job, owner string, until time.Time) error {
	body, err := json.Marshal(j)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE key_jobs SET state = ?, body = ?, lease_until = ?
		WHERE id = ? AND lease_owner = ?`), j.State, string(body), until.UnixMilli(), j.ID, owner)
	if err != nil {
		return fmt.Errorf("keys: save job %s: %w", j.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("keys: save job %s: %w", j.ID, err)
	} else if n == 0 {
		return fmt.Errorf("%w: job %s", ErrLeaseLost, j.ID)
	}
	return nil
}

// SaveJob stores j (new or updated).
func (s *SQLStore) SaveJob(ctx context.Context, j Job) error {
	body, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO key_jobs (id, state, body) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body`), j.ID, j.State, string(body))
	if err != nil {
		return fmt.Errorf("keys: save job %s: %w", j.ID, err)
	}
	return nil
}

// Job returns the job id, or an error wrapping ErrNoJob.
func (s *SQLStore) Job(ctx context.Context, id string) (Job, error) {
	var body string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT body FROM key_jobs WHERE id = ?`), id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("%w: %s", ErrNoJob, id)
	}
	if err != nil {
		return Job{}, fmt.Errorf("keys: job %s: %w", id, err)
	}
	var j Job
	return j, json.Unmarshal([]byte(body), &j)
}

// RunningJobs returns the jobs still running, oldest id first.
func (s *SQLStore) RunningJobs(ctx context.Context) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT body FROM key_jobs WHERE state = ? ORDER BY id`), JobRunning)
	if err != nil {
		return nil, fmt.Errorf("keys: running jobs: %w", err)
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		var body string
		var j Job
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(body), &j); err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// newJobID returns a random job id: "job_" and 16 hex digits.
func newJobID() string { return randomName("job_") }

// randomName returns prefix and 16 random hex digits.
func randomName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
