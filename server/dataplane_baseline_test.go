package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite" // the registered "sqlite" driver, for the hand-written baseline
)

// plainStore is the data path of a hand-written server.
type plainStore interface {
	get(ctx context.Context, tenant, collection, id string) (plainRecord, error)
	put(ctx context.Context, tenant, collection, id string, data []byte, now time.Time) (plainRecord, error)
}

var errPlainNotFound = errors.New("not found")

// plainRecord is what the hand-written server answers: the record as the
// server's record API encodes it.
type plainRecord struct {
	ID         string          `json:"id"`
	Collection string          `json:"collection"`
	Data       json.RawMessage `json:"data"`
	Version    int64           `json:"version"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// plainHandler serves GET and PUT of records for the tenant its static
// API-key map gives the bearer token.
func plainHandler(keys map[string]string, st plainStore) http.Handler {
	mux := http.NewServeMux()
	auth := func(r *http.Request) (string, bool) {
		t, ok := keys[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		return t, ok
	}
	answer := func(w http.ResponseWriter, status int, rec plainRecord) {
		body, err := json.Marshal(rec)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"`+strconv.FormatInt(rec.Version, 10)+`"`)
		w.WriteHeader(status)
		_, _ = w.Write(append(body, '\n'))
	}
	mux.HandleFunc("GET /v1/collections/{c}/records/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := auth(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		rec, err := st.get(r.Context(), t, r.PathValue("c"), r.PathValue("id"))
		if errors.Is(err, errPlainNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		answer(w, http.StatusOK, rec)
	})
	mux.HandleFunc("PUT /v1/collections/{c}/records/{id}", func(w http.ResponseWriter, r *http.Request) {
		t, ok := auth(r)
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil || !json.Valid(data) {
			http.Error(w, "invalid json", http.StatusBadRequest)
			return
		}
		rec, err := st.put(r.Context(), t, r.PathValue("c"), r.PathValue("id"), data, time.Now().UTC().Truncate(time.Microsecond))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		status := http.StatusOK
		if rec.Version == 1 {
			status = http.StatusCreated
		}
		answer(w, status, rec)
	})
	return mux
}

// servePlain serves st on a loopback listener until the benchmark ends,
// with benchTenants tenants holding benchRecords records each, and returns
// a benchServer with their keys.
func servePlain(b *testing.B, st plainStore) *benchServer {
	b.Helper()
	keys := map[string]string{}
	bs := &benchServer{client: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
	}}}
	for i := range benchTenants {
		tok := fmt.Sprintf("key-%03d", i)
		keys[tok] = fmt.Sprintf("tenant-%03d", i)
		bs.tokens = append(bs.tokens, tok)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: plainHandler(keys, st), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = hs.Close() })
	bs.base = "http://" + ln.Addr().String()
	var wg sync.WaitGroup
	for i, tok := range bs.tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range benchRecords {
				bs.must(b, "PUT", fmt.Sprintf("/v1/collections/bench/records/r%d", r), tok, benchBody(i, r), 201)
			}
		}()
	}
	wg.Wait()
	return bs
}

// plainPostgres is the hand-written PostgreSQL data path: pgxpool, its
// statement cache (each statement prepared once per connection), and a
// table without row-level security.
type plainPostgres struct{ pool *pgxpool.Pool }

const (
	plainPGTable = `CREATE TABLE plain_records (
	tenant_id  text COLLATE "C" NOT NULL,
	collection text COLLATE "C" NOT NULL,
	id         text COLLATE "C" NOT NULL,
	data       json        NOT NULL,
	version    bigint      NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, collection, id)
)`
	plainPGGet = `SELECT data, version, created_at, updated_at FROM plain_records
	WHERE tenant_id = $1 AND collection = $2 AND id = $3`
	plainPGPut = `INSERT INTO plain_records AS r (tenant_id, collection, id, data, version, created_at, updated_at)
	VALUES ($1, $2, $3, $4, 1, $5, $5)
	ON CONFLICT (tenant_id, collection, id) DO UPDATE SET data = excluded.data, version = r.version + 1, updated_at = excluded.updated_at
	RETURNING version, created_at`
)

func newPlainPostgres(b *testing.B, dbURL string) *benchServer {
	b.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 8 // postgres.DefaultMaxConns, the server's pool
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, plainPGTable); err != nil {
		b.Fatal(err)
	}
	return servePlain(b, plainPostgres{pool})
}

func (p plainPostgres) get(ctx context.Context, tenant, collection, id string) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection}
	var data []byte
	err := p.pool.QueryRow(ctx, plainPGGet, tenant, collection, id).Scan(&data, &rec.Version, &rec.CreatedAt, &rec.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return rec, errPlainNotFound
	}
	rec.Data = data
	rec.CreatedAt, rec.UpdatedAt = rec.CreatedAt.UTC(), rec.UpdatedAt.UTC()
	return rec, err
}

func (p plainPostgres) put(ctx context.Context, tenant, collection, id string, data []byte, now time.Time) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection, Data: data, UpdatedAt: now}
	err := p.pool.QueryRow(ctx, plainPGPut, tenant, collection, id, data, now).Scan(&rec.Version, &rec.CreatedAt)
	rec.CreatedAt = rec.CreatedAt.UTC()
	return rec, err
}

// plainSQLite is the hand-written SQLite data path: one writer connection
// and a pool of readers on one WAL file, with the store's pragmas, and
// statements database/sql prepares per connection.
type plainSQLite struct {
	write, read      *sql.DB
	getStmt, putStmt *sql.Stmt
}

func newPlainSQLite(b *testing.B, path string) *benchServer {
	b.Helper()
	open := func(write bool) *sql.DB {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(5000)")
		q.Add("_pragma", "synchronous(FULL)")
		if write {
			q.Add("_pragma", "journal_mode(WAL)")
			q.Set("_txlock", "immediate")
		} else {
			q.Add("_pragma", "query_only(1)")
		}
		db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = db.Close() })
		return db
	}
	p := plainSQLite{write: open(true)}
	p.write.SetMaxOpenConns(1)
	if _, err := p.write.Exec(`CREATE TABLE plain_records (
	tenant_id  TEXT    NOT NULL,
	collection TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	data       TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, collection, id)
) STRICT, WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	p.read = open(false)
	p.read.SetMaxOpenConns(4)
	p.read.SetMaxIdleConns(4)
	var err error
	if p.getStmt, err = p.read.Prepare(`SELECT data, version, created_at, updated_at FROM plain_records
	WHERE tenant_id = ?1 AND collection = ?2 AND id = ?3`); err != nil {
		b.Fatal(err)
	}
	if p.putStmt, err = p.write.Prepare(`INSERT INTO plain_records AS r (tenant_id, collection, id, data, version, created_at, updated_at)
	VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
	ON CONFLICT (tenant_id, collection, id) DO UPDATE SET data = excluded.data, version = r.version + 1, updated_at = excluded.updated_at
	RETURNING version, created_at`); err != nil {
		b.Fatal(err)
	}
	return servePlain(b, p)
}

func (p plainSQLite) get(ctx context.Context, tenant, collection, id string) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection}
	var data string
	var created, updated int64
	err := p.getStmt.QueryRowContext(ctx, tenant, collection, id).Scan(&data, &rec.Version, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, errPlainNotFound
	}
	rec.Data = json.RawMessage(data)
	rec.CreatedAt, rec.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return rec, err
}

func (p plainSQLite) put(ctx context.Context, tenant, collection, id string, data []byte, now time.Time) (plainRecord, error) {
	rec := plainRecord{ID: id, Collection: collection, Data: data, UpdatedAt: now}
	var created int64
	err := p.putStmt.QueryRowContext(ctx, tenant, collection, id, string(data), now.UnixMicro()).Scan(&rec.Version, &created)
	rec.CreatedAt = time.UnixMicro(created).UTC()
	return rec, err
}
