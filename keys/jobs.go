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

func (s *SQLStore) jobsTable(ctx context.Context) error {
	ddl := sqliteJobsSQL
	if s.postgres {
		ddl = pgJobsSQL
	}
	_, err := s.db.ExecContext(ctx, ddl)
	return err
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
func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "job_" + hex.EncodeToString(b[:])
}
