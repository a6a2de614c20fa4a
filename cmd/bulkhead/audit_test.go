package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
)

// fillAudit appends n entries to the control chain and to acme's.
func fillAudit(t *testing.T, l *audit.Log, n int) {
	t.Helper()
	for range n {
		for _, c := range []string{audit.ControlChain, "acme"} {
			if _, err := l.Append(context.Background(), audit.Entry{Chain: c, Principal: "operator:ops",
				Action: "tenant.update", Resource: "tenant/acme", Decision: "allow", RequestID: "r"}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestAuditVerifyFindsATamperedEntryInSQLite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, audit.FileName)
	l, err := audit.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	fillAudit(t, l, 10)
	l.Close()

	r := runCLI(t, nil, "audit", "verify", "--data-dir", dir)
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "OK: 20 entries in 2 chains verified") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}

	// An attacker with the file: drop the trigger, rewrite a decision.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER entries_no_update`,
		`UPDATE entries SET decision = 'deny' WHERE chain = 'acme' AND seq = 4`} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	r = runCLI(t, map[string]string{"BULKHEAD_DATA_DIR": dir}, "audit", "verify")
	mustFail(t, r, 1, "audit log verification failed: 1 problem(s) found")
	rows := tableRows(r.stdout)
	if len(rows) != 2 || strings.Join(rows[0][:3], " ") != "CHAIN SEQ PROBLEM" ||
		strings.Join(rows[1][:3], " ") != "acme 4 changed" {
		t.Fatalf("stdout does not name acme's entry 4:\n%s", r.stdout)
	}

	r = runCLI(t, nil, "audit", "verify", "--data-dir", dir, "--json")
	mustFail(t, r, 1)
	var rep struct {
		OK       bool            `json:"ok"`
		Problems []audit.Problem `json:"problems"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Chain != "acme" || rep.Problems[0].Seq != 4 || rep.Problems[0].Kind != audit.Changed {
		t.Fatalf("--json report: %+v", rep)
	}
}

func TestAuditVerifyRefusesAMissingLog(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, nil, "audit", "verify", "--data-dir", dir)
	mustFail(t, r, 1, "no audit log at "+filepath.Join(dir, audit.FileName))
	r = runCLI(t, nil, "audit", "verify", "extra")
	mustFail(t, r, 2, "takes no arguments")
}

func TestAuditVerifyOnPostgres(t *testing.T) {
	env := pgtest.New(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(env.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	r := runCLI(t, nil, "audit", "verify", "--postgres-admin", env.AdminURL)
	mustFail(t, r, 1, "no audit log in")

	l, err := audit.OpenPostgres(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	fillAudit(t, l, 5)
	l.Close()
	r = runCLI(t, map[string]string{"BULKHEAD_POSTGRES_ADMIN": env.AdminURL}, "audit", "verify")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "OK: 10 entries in 2 chains verified") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	// The owner switches the trigger off and removes an entry.
	for _, s := range []string{`ALTER TABLE bulkhead_audit.entries DISABLE TRIGGER USER`,
		`DELETE FROM bulkhead_audit.entries WHERE chain = '_control' AND seq = 2`,
		`ALTER TABLE bulkhead_audit.entries ENABLE TRIGGER USER`} {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	r = runCLI(t, nil, "audit", "verify", "--postgres-admin", env.AdminURL)
	mustFail(t, r, 1, "1 problem(s)")
	if rows := tableRows(r.stdout); len(rows) != 2 || strings.Join(rows[1][:3], " ") != "_control 2 removed" {
		t.Fatalf("stdout does not name _control's entry 2:\n%s", r.stdout)
	}
}
