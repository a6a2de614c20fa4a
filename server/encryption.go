package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/internal/datadir"
	"github.com/bulkhead-dev/bulkhead/keys"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// The key store's file in the data directory (SQLite), and the keyring's
// default name.
const (
	keysFile    = "keys.db"
	keyringFile = "keyring"
)

// encryption is the server's per-tenant encryption: the keys, their store
// and the re-encryption worker.
type encryption struct {
	ring   *keys.FileKeyring
	keys   *keys.Manager
	store  *keys.SQLStore
	db     *sql.DB
	worker *keys.Worker
	stop   context.CancelFunc
	done   chan struct{}
}

// openEncryption opens the keyring and the key store: <data-dir>/keys.db,
// or the schema bulkhead_keys on the main PostgreSQL shard's owner pool.
// It returns nil when Options.DisableEncryption is set.
func openEncryption(ctx context.Context, opts Options, backends map[string]store.Backend) (*encryption, error) {
	if opts.DisableEncryption {
		return nil, markPlaintext(ctx, opts, backends)
	}
	path := opts.KeyringPath
	if path == "" {
		path = filepath.Join(opts.DataDir, keyringFile)
	}
	ring, err := keys.OpenKeyring(path)
	if err != nil {
		return nil, err
	}
	e := &encryption{ring: ring}
	if opts.PostgresURL == "" {
		p := filepath.Join(opts.DataDir, keysFile)
		if err := datadir.CreatePrivate(p); err != nil {
			return nil, err
		}
		e.db, err = sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	} else {
		main, ok := backends[MainShard].(*postgres.Backend)
		if !ok {
			return nil, errors.New("no main PostgreSQL shard")
		}
		e.db = stdlib.OpenDBFromPool(main.OperatorPool())
	}
	if err != nil {
		return nil, err
	}
	if e.store, err = keys.OpenSQLStore(ctx, e.db, opts.PostgresURL != ""); err == nil {
		e.keys, err = keys.New(keys.Config{KMS: ring, KEKURI: ring.URI(), Store: e.store, TTL: opts.KeyCacheTTL, Now: opts.Now})
	}
	if err == nil {
		err = e.keys.CheckKeyring(ctx)
	}
	if err != nil {
		e.db.Close()
		return nil, fmt.Errorf("key store: %w", err)
	}
	return e, nil
}

// markPlaintext records in the key store, if there is one, that a server
// started with encryption off, so that the next one with encryption on
// seals what this one writes in the clear.
func markPlaintext(ctx context.Context, opts Options, backends map[string]store.Backend) error {
	var db *sql.DB
	if opts.PostgresURL == "" {
		p := filepath.Join(opts.DataDir, keysFile)
		if _, err := os.Stat(p); err != nil {
			return nil // never encrypted: the first server with encryption seals everything
		}
		var err error
		if db, err = sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(5000)&_txlock=immediate"); err != nil {
			return err
		}
	} else {
		main, ok := backends[MainShard].(*postgres.Backend)
		if !ok {
			return errors.New("no main PostgreSQL shard")
		}
		db = stdlib.OpenDBFromPool(main.OperatorPool())
	}
	defer db.Close()
	st, err := keys.OpenSQLStore(ctx, db, opts.PostgresURL != "")
	if err == nil {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		err = st.SetMark(ctx, keys.MarkPlaintext, now())
	}
	if err != nil {
		return fmt.Errorf("key store: record that encryption is off: %w", err)
	}
	return nil
}

// sealer is the router's store.Sealer: nil without encryption.
func (e *encryption) sealer() store.Sealer {
	if e == nil {
		return nil
	}
	return e.keys
}

// start runs the re-encryption worker in the background, and starts the
// job that seals records stored in the clear before encryption was on.
func (s *Server) startEncryption() error {
	e := s.enc
	if e == nil {
		return nil
	}
	e.worker = keys.NewWorker(keys.WorkerConfig{Keys: e.keys, Store: e.store, Router: s.router, Logger: s.log,
		Tenants: func(ctx context.Context, after string, limit int) ([]tenant.ID, error) {
			ts, err := s.catalog.ListTenants(ctx, after, limit)
			ids := make([]tenant.ID, 0, len(ts))
			for _, t := range ts {
				ids = append(ids, t.ID)
			}
			return ids, err
		}})
	if !s.opts.SkipSealJob {
		needed, err := e.worker.SealNeeded(context.Background())
		if err == nil && needed {
			_, err = e.worker.StartSeal(context.Background())
		}
		if err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		e.worker.Run(ctx, time.Second)
	}()
	return nil
}

// close stops the worker and closes the key store.
func (e *encryption) close() error {
	if e == nil {
		return nil
	}
	if e.stop != nil {
		e.stop()
		<-e.done
	}
	return e.db.Close()
}

// rotateTenantKey: POST /v1/admin/tenants/{id}/encryption/rotate → 202
// {"job": ...}: a new primary key now, the records re-sealed in the
// background, the old key destroyed when nothing uses it.
func (s *Server) rotateTenantKey(w http.ResponseWriter, r *http.Request) error {
	id, err := pathTenant(r)
	if err != nil {
		return err
	}
	if s.enc == nil {
		return newError(http.StatusConflict, "encryption_disabled", "the server runs with encryption turned off (--encryption=false)")
	}
	if _, err := s.catalog.Tenant(r.Context(), id); err != nil {
		return err
	}
	j, err := s.enc.worker.StartRotation(r.Context(), id)
	if errors.Is(err, keys.ErrRotationRunning) {
		return newError(http.StatusConflict, "rotation_in_progress", "a key rotation of this tenant is running: job "+j.ID)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/admin/jobs/"+j.ID)
	s.writeJSON(w, r, http.StatusAccepted, map[string]any{"job": j})
	return nil
}

// showJob: GET /v1/admin/jobs/{job}.
func (s *Server) showJob(w http.ResponseWriter, r *http.Request) error {
	if s.enc == nil {
		return newError(http.StatusNotFound, "job_not_found", "no such job")
	}
	j, err := s.enc.worker.Job(r.Context(), r.PathValue("job"))
	if errors.Is(err, keys.ErrNoJob) {
		return newError(http.StatusNotFound, "job_not_found", "no such job")
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, j)
	return nil
}

// rotateKeyring: POST /v1/admin/keyring/rotate → 200 with the new key id
// and the number of tenant keysets rewrapped; the old keyring keys are
// destroyed afterwards, so copies of the key store made before can no
// longer be unwrapped.
func (s *Server) rotateKeyring(w http.ResponseWriter, r *http.Request) error {
	if s.enc == nil {
		return newError(http.StatusConflict, "encryption_disabled", "the server runs with encryption turned off (--encryption=false)")
	}
	id, err := s.enc.ring.Rotate()
	if err != nil {
		return err
	}
	n, err := s.enc.keys.Rewrap(r.Context(), nil)
	if err != nil {
		return err
	}
	retired, err := s.enc.ring.Retire()
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"primary_key": id, "rewrapped": n, "retired_keys": retired})
	return nil
}

// fleetKeys is what the fleet makes a new tenant's keys and destroys a
// deleted tenant's with: nil without encryption.
func (e *encryption) fleetKeys() fleet.Keys {
	if e == nil {
		return nil
	}
	return e.keys
}
