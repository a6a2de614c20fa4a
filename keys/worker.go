package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TenantLister lists tenants in id order after after, at most limit (a
// seal job visits them all).
type TenantLister func(ctx context.Context, after string, limit int) ([]tenant.ID, error)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	Keys    *Manager
	Store   *SQLStore     // keeps the jobs
	Router  *store.Router // whose Sealer is Keys
	Tenants TenantLister
	// Batch is how many records one step re-seals per job; 0 means 200.
	Batch int
	// Logger gets failed steps; none if nil.
	Logger *slog.Logger
}

// Worker runs re-encryption jobs in the background: each round does one
// bounded batch of every running job, so tenants take turns and a big
// tenant's rotation does not hold back a small one's. Progress is saved
// after every batch; a restarted worker picks up where it stopped.
//
// With several instances on one key store, each job is stepped by one
// worker at a time: a worker claims a job's lease (JobLease) before a
// step and saves the step only while it still holds the lease, so two
// instances neither do the same batch twice nor save older progress over
// newer; a job whose worker stopped is taken over once its lease runs out.
type Worker struct {
	cfg   WorkerConfig
	owner string // this worker's name on the leases it holds
	wake  chan struct{}
	mu    sync.Mutex // one round at a time
}

// maxAttempts is how many failed steps in a row fail a job.
const maxAttempts = 20

// NewWorker returns a Worker for cfg.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.Batch <= 0 {
		cfg.Batch = 200
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, owner: randomName("worker_"), wake: make(chan struct{}, 1)}
}

func (w *Worker) now() time.Time { return w.cfg.Keys.now() }

func (w *Worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// ErrRotationRunning: the tenant's keys are being rotated already. A second
// rotation would let the first job's Retire destroy the key the second one
// made old before every instance's cache has let go of it.
var ErrRotationRunning = errors.New("a key rotation of the tenant is running")

// StartRotation rotates the tenant's keys (Manager.Rotate) and starts the
// job that re-seals its records and then retires the old keys. While a
// rotation of the tenant runs it returns that job and an error wrapping
// ErrRotationRunning.
func (w *Worker) StartRotation(ctx context.Context, id tenant.ID) (Job, error) {
	running, err := w.cfg.Store.RunningJobs(ctx)
	if err != nil {
		return Job{}, err
	}
	for _, j := range running {
		if j.Kind == JobRotate && j.Tenant == id.String() {
			return j, fmt.Errorf("%w: %s (job %s)", ErrRotationRunning, id, j.ID)
		}
	}
	info, err := w.cfg.Keys.Rotate(ctx, id)
	if err != nil {
		return Job{}, err
	}
	now := w.now()
	j := Job{ID: newJobID(), Kind: JobRotate, State: JobRunning, Tenant: id.String(), Key: info.DataKeys[0],
		Pass: 1, CreatedAt: now, UpdatedAt: now}
	if err := w.cfg.Store.SaveJob(ctx, j); err != nil {
		return Job{}, err
	}
	w.poke()
	return j, nil
}

// StartSeal starts the job that re-seals every tenant's records stored in
// the clear, unless one is running (then it returns that one).
func (w *Worker) StartSeal(ctx context.Context) (Job, error) {
	running, err := w.cfg.Store.RunningJobs(ctx)
	if err != nil {
		return Job{}, err
	}
	for _, j := range running {
		if j.Kind == JobSeal {
			return j, nil
		}
	}
	now := w.now()
	j := Job{ID: newJobID(), Kind: JobSeal, State: JobRunning, CreatedAt: now, UpdatedAt: now}
	if err := w.cfg.Store.SaveJob(ctx, j); err != nil {
		return Job{}, err
	}
	w.poke()
	return j, nil
}

// SealNeeded reports whether records may be stored in the clear: no seal
// job has finished yet, or a server started with encryption off since the
// last one began. A server starts the seal job only then, not at every
// start (the job reads every record of every tenant).
func (w *Worker) SealNeeded(ctx context.Context) (bool, error) {
	sealed, ok, err := w.cfg.Store.Mark(ctx, MarkSealed)
	if err != nil || !ok {
		return true, err
	}
	plain, ok, err := w.cfg.Store.Mark(ctx, MarkPlaintext)
	return ok && !plain.Before(sealed), err
}

// Job returns a job by id, or an error wrapping ErrNoJob.
func (w *Worker) Job(ctx context.Context, id string) (Job, error) { return w.cfg.Store.Job(ctx, id) }

// Run runs rounds until ctx is done, waiting interval (or a new job)
// between rounds that had nothing to do.
func (w *Worker) Run(ctx context.Context, interval time.Duration) {
	defer func() {
		// Hand the jobs over now rather than when the leases run out: a
		// restarted server (or another instance) resumes them at once.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.Release(rctx); err != nil {
			w.cfg.Logger.Warn("key jobs: release leases", slog.String("error", err.Error()))
		}
	}()
	for {
		busy, err := w.Round(ctx)
		if err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("key jobs", slog.String("error", err.Error()))
		}
		if busy && err == nil {
			continue
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Release gives up the leases this worker holds, so that another worker
// takes its jobs over at once (Run does as it returns). A worker that
// runs a Round after Release claims its jobs again.
func (w *Worker) Release(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg.Store.releaseJobs(ctx, w.owner)
}

// Round does one batch of every running job and reports whether any job
// made progress.
func (w *Worker) Round(ctx context.Context) (busy bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids, err := w.cfg.Store.runningJobIDs(ctx)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		now := w.now()
		j, mine, err := w.cfg.Store.claimJob(ctx, id, w.owner, now, now.Add(JobLease))
		if err != nil {
			return busy, err
		}
		if !mine { // another instance's worker steps it
			continue
		}
		progressed, serr := w.step(ctx, &j)
		if serr != nil {
			j.Attempts++
			j.Error = serr.Error()
			if j.Attempts >= maxAttempts {
				j.State = JobFailed
			}
			w.cfg.Logger.Warn("key job step failed", slog.String("job", j.ID), slog.String("tenant", j.Tenant),
				slog.String("error", serr.Error()))
		} else if progressed {
			j.Attempts, j.Error = 0, ""
		}
		if serr == nil && !progressed {
			continue
		}
		j.UpdatedAt = w.now()
		if err := w.cfg.Store.saveLeased(ctx, j, w.owner, j.UpdatedAt.Add(JobLease)); errors.Is(err, ErrLeaseLost) {
			// This step outlasted the lease and another worker took the
			// job over: its progress stands, this step's is dropped (the
			// work is idempotent; the other worker does it again).
			w.cfg.Logger.Warn("key job taken over by another worker", slog.String("job", j.ID))
			continue
		} else if err != nil {
			return busy, err
		}
		busy = busy || progressed
	}
	return busy, nil
}

// step does one batch of j.
func (w *Worker) step(ctx context.Context, j *Job) (bool, error) {
	if j.Kind == JobSeal && j.Tenant == "" {
		return w.nextTenant(ctx, j)
	}
	id, err := tenant.Parse(j.Tenant)
	if err != nil {
		j.State, j.Error = JobFailed, err.Error()
		return true, nil
	}
	if j.Pass == 2 && w.now().Before(j.NotBefore) {
		return false, nil // waiting for every instance's cache to expire
	}
	if j.Kind == JobRotate {
		// The tenant deleted meanwhile, and perhaps created again with the
		// same id: its keys are not the ones this job rotated to, and
		// retiring "old" keys would destroy the new tenant's.
		k, err := w.cfg.Keys.keys(ctx, id)
		if err != nil {
			return false, err
		}
		if k.primary != j.Key {
			j.State, j.Error = JobFailed, fmt.Sprintf("the keys of tenant %s changed under the rotation (deleted, or created again)", id)
			return true, nil
		}
	}
	tctx := tenant.WithID(ctx, id)
	err = w.cfg.Router.Tx(tctx, func(tx *store.Tx) error {
		if !j.Listed {
			cs, err := tx.Collections(tctx)
			if err != nil {
				return err
			}
			j.Collections = j.Collections[:0]
			for _, c := range cs {
				j.Collections = append(j.Collections, c.Name)
			}
			j.Listed, j.After = true, ""
			return nil
		}
		if len(j.Collections) == 0 {
			return nil
		}
		res, err := tx.Reseal(tctx, j.Collections[0], j.After, w.cfg.Batch)
		if err != nil {
			return err
		}
		j.Scanned += int64(res.Scanned)
		j.Resealed += int64(res.Resealed)
		if res.Next == "" {
			j.Collections, j.After = j.Collections[1:], ""
		} else {
			j.After = res.Next
		}
		return nil
	})
	if errors.Is(err, store.ErrUnknownTenant) {
		if j.Kind == JobSeal { // deleted meanwhile: on to the next
			return w.nextTenant(ctx, j)
		}
		j.State, j.Error = JobFailed, fmt.Sprintf("tenant %s is gone", id)
		return true, nil
	}
	if err != nil || !j.Listed || len(j.Collections) > 0 {
		return err == nil, err
	}
	return true, w.endPass(ctx, j, id)
}

// endPass moves j on once its tenant's collections are done.
func (w *Worker) endPass(ctx context.Context, j *Job, id tenant.ID) error {
	if j.Kind == JobSeal {
		_, err := w.nextTenant(ctx, j)
		return err
	}
	if j.Pass == 1 {
		j.Pass, j.Listed = 2, false
		j.NotBefore = j.CreatedAt.Add(w.cfg.Keys.TTL())
		return nil
	}
	gone, err := w.cfg.Keys.Retire(ctx, id)
	if err != nil {
		return err
	}
	j.Destroyed, j.State = gone, JobDone
	return nil
}

// nextTenant moves a seal job to the tenant after j.Tenant, or ends it.
func (w *Worker) nextTenant(ctx context.Context, j *Job) (bool, error) {
	ids, err := w.cfg.Tenants(ctx, j.Tenant, 1)
	if err != nil {
		return false, err
	}
	j.Listed, j.Collections, j.After = false, nil, ""
	if len(ids) == 0 {
		j.State = JobDone
		return true, w.cfg.Store.SetMark(ctx, MarkSealed, j.CreatedAt)
	}
	j.Tenant = ids[0].String()
	return true, nil
}
