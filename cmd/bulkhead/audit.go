package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/audit"
)

func newAuditCommand(g *globals) *cobra.Command {
	cmd := groupCommand("audit", "Check the tamper-evident audit log")
	cmd.AddCommand(newAuditVerifyCommand(g))
	return cmd
}

func newAuditVerifyCommand(g *globals) *cobra.Command {
	var pgAdmin string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every audit chain for changed, removed, reordered or cut-off entries",
		Long: `Walk every chain of the audit log (one per tenant, and _control for the control
plane) and check each entry's hash, the link to the entry before it, that no
seq is missing, and that each chain ends where its recorded head says.

verify opens the log directly, not through a server: the SQLite file
<data-dir>/audit.db, or with --postgres-admin the schema bulkhead_audit of
that PostgreSQL database (as its owner role). It prints OK with the entries
per chain, or a table of problems (chain, seq, problem) and exits 1.

It cannot detect a chain rewritten from some entry to its end, hashes and
head included, by someone with write access to the database: export the
heads (the LAST SEQ and HASH of each chain, or --json) elsewhere and compare.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log, closeLog, err := openAuditLog(ctx, g.dataDir, pgAdmin)
			if err != nil {
				return err
			}
			defer closeLog()
			rep, err := log.Verify(ctx)
			if err != nil {
				return err
			}
			if err := printAuditReport(cmd.OutOrStdout(), rep, asJSON); err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("audit log verification failed: %d problem(s) found", len(rep.Problems))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pgAdmin, "postgres-admin", "",
		"verify the audit log in this PostgreSQL database (URL of its owner role) instead of <data-dir>/audit.db")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// openAuditLog opens the PostgreSQL log when pgAdmin is set, else the
// SQLite file in dataDir; it refuses to create a log that is not there.
func openAuditLog(ctx context.Context, dataDir, pgAdmin string) (*audit.Log, func(), error) {
	if pgAdmin == "" {
		path := filepath.Join(dataDir, audit.FileName)
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("no audit log at %s (give the server's --data-dir, or --postgres-admin for PostgreSQL)", path)
			}
			return nil, nil, fmt.Errorf("audit log %s: %w", path, err)
		}
		l, err := audit.OpenSQLite(path)
		if err != nil {
			return nil, nil, err
		}
		return l, func() { l.Close() }, nil
	}
	cfg, err := pgxpool.ParseConfig(pgAdmin)
	if err != nil {
		return nil, nil, fmt.Errorf("--postgres-admin %s: %w", redactURL(pgAdmin), err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", redactURL(pgAdmin), err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('bulkhead_audit.entries') IS NOT NULL`).Scan(&exists); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("connect to %s: %w", redactURL(pgAdmin), err)
	}
	if !exists {
		pool.Close()
		return nil, nil, fmt.Errorf("no audit log in %s (schema %s has no entries table; is this the catalog's database?)", redactURL(pgAdmin), audit.PostgresSchema)
	}
	l, err := audit.OpenPostgres(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return l, func() { l.Close(); pool.Close() }, nil
}

// printAuditReport prints OK and the chains, or the problems.
func printAuditReport(w io.Writer, rep audit.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			OK bool `json:"ok"`
			audit.Report
		}{rep.OK(), rep})
	}
	if !rep.OK() {
		rows := make([][]string, len(rep.Problems))
		for i, p := range rep.Problems {
			rows[i] = []string{p.Chain, fmt.Sprint(p.Seq), p.Kind, p.Detail}
		}
		return writeTable(w, []string{"CHAIN", "SEQ", "PROBLEM", "DETAIL"}, rows)
	}
	var total int64
	rows := make([][]string, len(rep.Chains))
	for i, c := range rep.Chains {
		total += c.Entries
		rows[i] = []string{c.Chain, fmt.Sprint(c.Entries), fmt.Sprint(c.LastSeq), c.LastHash}
	}
	fmt.Fprintf(w, "OK: %d entries in %d chains verified\n", total, len(rep.Chains))
	if len(rows) == 0 {
		return nil
	}
	return writeTable(w, []string{"CHAIN", "ENTRIES", "LAST SEQ", "HASH"}, rows)
}
