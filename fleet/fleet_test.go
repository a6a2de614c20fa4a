package fleet_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// notes are the team migrations the SQLite tests apply.
var notes = []migrate.Migration{
	{Version: 1, Name: "create_notes", SQL: `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`},
	{Version: 2, Name: "create_tags", SQL: `CREATE TABLE tags (note INTEGER NOT NULL, tag TEXT NOT NULL)`},
}

// sqliteFleet is a fleet on one SQLite shard "local" in dir, whose backend
// can be made to fail Drop.
type sqliteFleet struct {
	*fleet.Fleet
	cat     *catalog.Catalog
	backend *dropper
	dir     string
}

// dropper is a SQLite backend whose Drop fails while fail is set.
type dropper struct {
	*sqlite.Backend
	mu   sync.Mutex
	fail error // guarded by mu
}

func (d *dropper) Drop(ctx context.Context, id tenant.ID, mode store.Mode) error {
	d.mu.Lock()
	err := d.fail
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return d.Backend.Drop(ctx, id, mode)
}

func (d *dropper) failDrops(err error) {
	d.mu.Lock()
	d.fail = err
	d.mu.Unlock()
}

// openSQLite opens a fleet in dir with migrations ms and placement rule
// rule (nil: the default). close releases the directory; the test's end
// does too.
func openSQLite(t *testing.T, dir string, ms []migrate.Migration, rule fleet.PlacementRule) (f *sqliteFleet, close func()) {
	t.Helper()
	b, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(filepath.Join(dir, "control.db"), catalog.Options{})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	d := &dropper{Backend: b}
	fl, err := fleet.New(fleet.Config{Catalog: cat, Backends: map[string]store.Backend{"local": d},
		Migrations: ms, Placement: rule})
	if err != nil {
		cat.Close()
		b.Close()
		t.Fatal(err)
	}
	var once sync.Once
	close = func() {
		once.Do(func() {
			fl.Close()
			cat.Close()
		})
	}
	t.Cleanup(close)
	return &sqliteFleet{Fleet: fl, cat: cat, backend: d, dir: dir}, close
}

// status returns the status of tenant id.
func status(t *testing.T, f *fleet.Fleet, id string) fleet.TenantStatus {
	t.Helper()
	rep, err := f.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Tenants {
		if s.ID.String() == id {
			return s
		}
	}
	t.Fatalf("tenant %s is not in the status: %+v", id, rep.Tenants)
	return fleet.TenantStatus{}
}

// addNote writes a note as tenant id with the team's own SQL.
func addNote(ctx context.Context, f *fleet.Fleet, id, body string) error {
	return sqlite.Tx(tenant.WithID(ctx, tenant.MustParse(id)), f.Router(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO notes (body) VALUES (?)`, body)
		return err
	})
}

// countNotes counts tenant id's notes.
func countNotes(ctx context.Context, f *fleet.Fleet, id string) (int, error) {
	var n int
	err := sqlite.ReadTx(tenant.WithID(ctx, tenant.MustParse(id)), f.Router(), func(tx *sql.Tx) error {
		return tx.QueryRow(`SELECT count(*) FROM notes`).Scan(&n)
	})
	return n, err
}

func TestCreateAppliesAndRecordsMigrationsOnSQLite(t *testing.T) {
	ctx := context.Background()
	f, _ := openSQLite(t, t.TempDir(), notes, nil)
	t.Run("a database tenant is created at the latest version", func(t *testing.T) {
		tn, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")})
		if err != nil {
			t.Fatal(err)
		}
		if tn.State != catalog.Active || tn.Placement != (store.Placement{Mode: store.Database, Shard: "local"}) {
			t.Fatalf("created %+v", tn)
		}
		s := status(t, f.Fleet, "acme")
		if s.Unit != "local/database/acme" || s.Version != 2 || s.Pending != 0 {
			t.Fatalf("status %+v, want unit local/database/acme at version 2", s)
		}
		if err := addNote(ctx, f.Fleet, "acme", "hello"); err != nil {
			t.Fatalf("the migrated table is not there: %v", err)
		}
	})
	t.Run("a pooled tenant has no unit on SQLite", func(t *testing.T) {
		if _, err := f.Create(ctx, fleet.Spec{ID: "bravo"}); err != nil {
			t.Fatal(err)
		}
		s := status(t, f.Fleet, "bravo")
		if s.Placement.Mode != store.Pooled || s.Unit != "" || s.Pending != 0 {
			t.Fatalf("status %+v", s)
		}
	})
	t.Run("migrate status and up agree with create", func(t *testing.T) {
		rep, err := f.Migrate(ctx, fleet.MigrateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Units) != 1 || rep.Counts[migrate.StateCurrent] != 1 {
			t.Fatalf("a run after create found %v in %+v", rep.Counts, rep.Units)
		}
	})
}

func TestAFailingPlacementRuleChangesNothing(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("no capacity left")
	for name, rule := range map[string]fleet.PlacementRule{
		"the rule fails": fleet.PlaceFunc(func(context.Context, fleet.PlacementRequest) (store.Placement, error) {
			return store.Placement{}, boom
		}),
		"the rule picks a shard that does not exist": fleet.PlaceFunc(func(context.Context, fleet.PlacementRequest) (store.Placement, error) {
			return store.Placement{Mode: store.Database, Shard: "elsewhere"}, nil
		}),
		"the rule picks a mode the shard cannot host": fleet.PlaceFunc(func(context.Context, fleet.PlacementRequest) (store.Placement, error) {
			return store.Placement{Mode: store.Schema, Shard: "local"}, nil
		}),
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := openSQLite(t, t.TempDir(), notes, rule)
			_, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")})
			if !errors.Is(err, fleet.ErrPlacement) {
				t.Fatalf("Create: %v, want ErrPlacement", err)
			}
			assertEmpty(t, f)
		})
	}
}

// assertEmpty fails t if the fleet has a tenant or a tenant file.
func assertEmpty(t *testing.T, f *sqliteFleet) {
	t.Helper()
	ts, err := f.cat.ListTenants(context.Background(), "", 10)
	if err != nil || len(ts) != 0 {
		t.Fatalf("the catalog holds %v (%v)", ts, err)
	}
	files, _ := os.ReadDir(filepath.Join(f.dir, "tenants"))
	if len(files) != 0 {
		t.Fatalf("tenant files were left: %v", files)
	}
}

func TestCreateRefusesBadInputAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	f, _ := openSQLite(t, t.TempDir(), notes, nil)
	for _, tc := range []struct {
		name string
		spec fleet.Spec
		want error
	}{
		{"an empty id", fleet.Spec{ID: ""}, tenant.ErrInvalid},
		{"an id with a control character", fleet.Spec{ID: "ac\x00me"}, tenant.ErrInvalid},
		{"an id with a newline", fleet.Spec{ID: "acme\n"}, tenant.ErrInvalid},
		{"an id that is too long", fleet.Spec{ID: "a" + strings.Repeat("b", tenant.MaxLen)}, tenant.ErrInvalid},
		{"an id in upper case", fleet.Spec{ID: "Acme"}, tenant.ErrInvalid},
		{"a reserved id", fleet.Spec{ID: "admin"}, tenant.ErrInvalid},
		{"an unknown mode", fleet.Spec{ID: "acme", Isolation: new("sharded")}, store.ErrInvalidIsolation},
		{"a mode the shard cannot host", fleet.Spec{ID: "acme", Isolation: new("schema")}, store.ErrIsolationUnsupported},
		{"an empty shard", fleet.Spec{ID: "acme", Shard: new("")}, fleet.ErrInvalidShard},
		{"an unknown shard", fleet.Spec{ID: "acme", Shard: new("mars")}, fleet.ErrInvalidShard},
		{"an unknown tier", fleet.Spec{ID: "acme", Tier: new("gold")}, catalog.ErrInvalidTier},
		{"an empty name", fleet.Spec{ID: "acme", Name: new("")}, catalog.ErrInvalidName},
		{"a name with a control character", fleet.Spec{ID: "acme", Name: new("a\tb")}, catalog.ErrInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Create(ctx, tc.spec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Create(%q): %v, want %v", tc.spec.ID, err, tc.want)
			}
			assertEmpty(t, f)
		})
	}
	t.Run("a taken id", func(t *testing.T) {
		if _, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")}); err != nil {
			t.Fatal(err)
		}
		if err := addNote(ctx, f.Fleet, "acme", "kept"); err != nil {
			t.Fatal(err)
		}
		_, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")})
		if !errors.Is(err, catalog.ErrExists) {
			t.Fatalf("Create of a taken id: %v, want catalog.ErrExists", err)
		}
		if n, err := countNotes(ctx, f.Fleet, "acme"); err != nil || n != 1 {
			t.Fatalf("the existing tenant has %d notes (%v), want 1", n, err)
		}
	})
}

func TestARecreatedTenantStartsClean(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, closeFleet := openSQLite(t, dir, notes, nil)
	if _, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")}); err != nil {
		t.Fatal(err)
	}
	if err := addNote(ctx, f.Fleet, "acme", "the old tenant's note"); err != nil {
		t.Fatal(err)
	}
	if err := f.Offboard(ctx, tenant.MustParse("acme")); err != nil {
		t.Fatal(err)
	}
	closeFleet()

	// The same id in a fleet without migrations: a version left behind by
	// the old tenant would show as 2, its notes table would still answer.
	f, _ = openSQLite(t, dir, nil, nil)
	if _, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")}); err != nil {
		t.Fatal(err)
	}
	if s := status(t, f.Fleet, "acme"); s.Version != 0 || s.Unit != "local/database/acme" {
		t.Fatalf("the new tenant's status is %+v, want version 0", s)
	}
	if _, err := countNotes(ctx, f.Fleet, "acme"); err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Fatalf("the new tenant sees the old one's table: %v", err)
	}
}

func TestAFailedMigrationLeavesTheOthersMigrated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, closeFleet := openSQLite(t, dir, notes[:1], nil)
	for _, id := range []string{"alpha", "bravo", "zulu"} {
		if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new("database")}); err != nil {
			t.Fatal(err)
		}
	}
	// zulu made a table of its own that migration 2 also creates.
	err := sqlite.Tx(tenant.WithID(ctx, tenant.MustParse("zulu")), f.Router(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`CREATE TABLE tags (x TEXT)`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	closeFleet()

	f, _ = openSQLite(t, dir, notes, nil)
	var done []string
	rep, err := f.Migrate(ctx, fleet.MigrateOptions{Concurrency: 1, Progress: func(p migrate.Progress) {
		if p.Done {
			done = append(done, p.Unit.Tenant.String())
		}
	}})
	var ue *migrate.UnitError
	if !errors.As(err, &ue) || ue.Unit.Tenant.String() != "zulu" || !strings.Contains(err.Error(), "tenant zulu") {
		t.Fatalf("Migrate: %v, want a UnitError naming tenant zulu", err)
	}
	if rep.Counts[migrate.StateMigrated] != 2 || rep.Counts[migrate.StateFailed] != 1 {
		t.Fatalf("report counts %v", rep.Counts)
	}
	if strings.Join(done, " ") != "alpha bravo zulu" {
		t.Fatalf("progress reported %v", done)
	}
	for id, want := range map[string]int{"alpha": 2, "bravo": 2, "zulu": 1} {
		if s := status(t, f.Fleet, id); s.Version != want || s.Pending != 2-want {
			t.Errorf("%s: status %+v, want version %d", id, s, want)
		}
	}
}

func TestOffboardIsIdempotentAndResumable(t *testing.T) {
	ctx := context.Background()
	f, _ := openSQLite(t, t.TempDir(), notes, nil)
	acme := tenant.MustParse("acme")
	for _, id := range []string{"acme", "bravo"} {
		if _, err := f.Create(ctx, fleet.Spec{ID: id, Isolation: new("database")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := addNote(ctx, f.Fleet, "acme", "to be removed"); err != nil {
		t.Fatal(err)
	}
	disk := errors.New("disk on fire")
	f.backend.failDrops(disk)

	t.Run("a failed drop leaves the tenant deleting and unreachable", func(t *testing.T) {
		if err := f.Offboard(ctx, acme); !errors.Is(err, disk) {
			t.Fatalf("Offboard: %v, want the drop's error", err)
		}
		if tn, err := f.cat.Tenant(ctx, acme); err != nil || tn.State != catalog.Deleting {
			t.Fatalf("tenant %+v (%v), want state deleting", tn, err)
		}
		if _, err := countNotes(ctx, f.Fleet, "acme"); !errors.Is(err, store.ErrUnknownTenant) {
			t.Fatalf("a deleting tenant's data is reachable: %v", err)
		}
	})
	t.Run("offboarding again finishes the job", func(t *testing.T) {
		f.backend.failDrops(nil)
		if err := f.Offboard(ctx, acme); err != nil {
			t.Fatal(err)
		}
		if _, err := f.cat.Tenant(ctx, acme); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("the tenant is still there: %v", err)
		}
	})
	t.Run("offboarding a removed tenant changes nothing", func(t *testing.T) {
		if err := f.Offboard(ctx, acme); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Offboard of a removed tenant: %v, want catalog.ErrNotFound", err)
		}
		if n, err := countNotes(ctx, f.Fleet, "bravo"); err != nil || n != 0 {
			t.Fatalf("bravo: %d notes, %v", n, err)
		}
	})
	t.Run("ResumeOffboarding finishes an interrupted offboarding", func(t *testing.T) {
		bravo := tenant.MustParse("bravo")
		f.backend.failDrops(disk)
		if err := f.Offboard(ctx, bravo); !errors.Is(err, disk) {
			t.Fatalf("Offboard: %v", err)
		}
		f.backend.failDrops(nil)
		if err := f.ResumeOffboarding(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.cat.Tenant(ctx, bravo); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("bravo is still there: %v", err)
		}
		files, _ := os.ReadDir(filepath.Join(f.dir, "tenants"))
		if len(files) != 0 {
			t.Fatalf("tenant files were left: %v", files)
		}
	})
}

func TestFewestTenantsPlacesOnTheLeastLoadedShard(t *testing.T) {
	counts := map[string]int{"a": 3, "b": 1, "c": 1}
	req := fleet.PlacementRequest{Tenant: tenant.MustParse("acme"), Shards: []string{"a", "b", "c"},
		TenantsPerShard: func(context.Context) (map[string]int, error) { return counts, nil }}
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		mode       store.Mode
		shard      string
		want       store.Placement
		wantErrFor error
	}{
		{name: "no wish: pooled on the first of the least loaded", want: store.Placement{Mode: store.Pooled, Shard: "b"}},
		{name: "a mode asked for is kept", mode: store.Schema, want: store.Placement{Mode: store.Schema, Shard: "b"}},
		{name: "a shard asked for is kept", shard: "a", want: store.Placement{Mode: store.Pooled, Shard: "a"}},
		{name: "an unknown shard is refused", shard: "z", wantErrFor: fleet.ErrInvalidShard},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req
			r.Mode, r.Shard = tc.mode, tc.shard
			p, err := fleet.FewestTenants.Place(ctx, r)
			if tc.wantErrFor != nil {
				if !errors.Is(err, tc.wantErrFor) {
					t.Fatalf("Place: %v, want %v", err, tc.wantErrFor)
				}
				return
			}
			if err != nil || p != tc.want {
				t.Fatalf("Place = %+v, %v; want %+v", p, err, tc.want)
			}
		})
	}
}
