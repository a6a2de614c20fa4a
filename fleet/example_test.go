package fleet_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"

	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// A service on the embedded default: each tenant gets a SQLite file of
// its own, created with the team's migrations applied; its version is read
// from the file itself.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fleet-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The backend in dir, the catalog in dir/control.db, one shard "local".
	f, err := fleet.OpenSQLite(ctx, dir, fleet.OpenOptions{
		Migrations: []migrate.Migration{
			{Version: 1, Name: "create_notes", SQL: `CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close() // the catalog and the backend

	acme, err := f.Create(ctx, fleet.Spec{ID: "acme", Isolation: new("database")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", acme.ID, acme.State, acme.Placement.Mode)

	// The tenant's own table is there at once.
	err = sqlite.Tx(tenant.WithID(ctx, acme.ID), f.Router(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO notes (body) VALUES ('hello')`)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	rep, err := f.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range rep.Tenants {
		fmt.Printf("%s: unit %s, version %d of %d, %d pending\n", s.ID, s.Unit, s.Version, rep.Latest, s.Pending)
	}

	if err := f.Offboard(ctx, acme.ID); err != nil {
		log.Fatal(err)
	}
	rep, _ = f.Status(ctx)
	fmt.Println("tenants after offboarding:", len(rep.Tenants))
	// Output:
	// created acme active database
	// acme: unit local/database/acme, version 1 of 1, 0 pending
	// tenants after offboarding: 0
}
