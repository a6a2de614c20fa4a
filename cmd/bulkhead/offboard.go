package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/receipt"
)

func newTenantOffboardCommand(g *globals, cf *clientFlags) *cobra.Command {
	var exportPath, receiptPath string
	var yes bool
	cmd := &cobra.Command{
		Use:   "offboard ID --export FILE [--receipt PATH] --yes",
		Short: "Export a tenant, delete it, and keep the server's signed receipt",
		Long: `Offboard a tenant with a receipt:

  1. suspend it, so that its records stop changing;
  2. export it to FILE (which must not exist), counting records and computing
     the SHA-256 while writing;
  3. ask the server to delete it, with the export's SHA-256 and record count.
     The server counts the tenant's records itself and refuses (409
     export_mismatch, nothing deleted) if the export holds another number;
  4. write the receipt the server signed with its Ed25519 key to PATH
     (default FILE.receipt.json): the tenant, when its data was deleted, its
     record counts, the export's SHA-256 and count, and the ids of the
     encryption keys destroyed with it.

Check a receipt with ` + "`bulkhead receipt verify PATH --export FILE`" + `. If a step
fails the tenant stays suspended (` + "`bulkhead tenant resume ID`" + ` brings it back).
Deleting cannot be undone, so it needs --yes.`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if exportPath == "" {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("--export FILE is required: the file the tenant's records are exported to")}
			}
			if !yes {
				return fmt.Errorf("refusing to offboard tenant %s without --yes: it deletes all its data and revokes its keys, and cannot be undone", cell(id))
			}
			if receiptPath == "" {
				receiptPath = exportPath + ".receipt.json"
			}
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
			fail := func(step string, err error) error {
				return fmt.Errorf("offboard tenant %s: %s: %w (the tenant is not deleted)", id, step, err)
			}
			// Both files first: nothing is deleted unless its receipt has a place.
			out, err := createNew(exportPath, "export file")
			if err != nil {
				return fail("create the export file", err)
			}
			defer out.Close()
			rf, err := createNew(receiptPath, "receipt file")
			if err != nil {
				return fail("create the receipt file", err)
			}
			defer rf.Close()
			written := false
			defer func() {
				if !written {
					_ = os.Remove(receiptPath)
				}
			}()
			if _, err := c.call(ctx, http.MethodPost, tenantPath(id)+"/suspend", nil, nil, nil); err != nil {
				return fail("suspend", err)
			}
			res, err := exportTenant(ctx, c, id, "", out, stderr)
			if err == nil {
				err = out.Sync()
			}
			if err != nil {
				return fail("export", err)
			}
			var signed receipt.Signed
			body := map[string]any{"export_sha256": res.SHA256, "export_records": res.Records}
			if _, err := c.call(ctx, http.MethodPost, tenantPath(id)+"/offboard", nil, body, &signed); err != nil {
				return fail("delete", err)
			}
			file, err := json.Marshal(signed) // compact: the receipt stays in its signed, canonical form
			if err == nil {
				_, err = rf.Write(append(file, '\n'))
			}
			if err == nil {
				err = rf.Close()
			}
			if err != nil {
				// Deleted, but the receipt did not reach its file: print it.
				fmt.Fprintf(stderr, "%s\n", file)
				return fmt.Errorf("offboard tenant %s: deleted, but writing the receipt to %s failed: %w (the receipt is printed above)", id, receiptPath, err)
			}
			written = true
			if cf.json {
				return printJSON(cmd.OutOrStdout(), file)
			}
			var rc receipt.Receipt
			_ = json.Unmarshal(signed.Receipt, &rc)
			return writeFields(cmd.OutOrStdout(), [][2]string{{"Tenant", id + " (deleted)"}, {"Records", fmt.Sprint(rc.Records)},
				{"Export", exportPath}, {"Export SHA-256", res.SHA256}, {"Destroyed keys", fmt.Sprint(len(rc.DestroyedKeys))},
				{"Receipt", receiptPath}, {"Signed by key", signed.KeyID}})
		},
	}
	cmd.Flags().StringVar(&exportPath, "export", "", "export the tenant to this file first (required; must not exist)")
	cmd.Flags().StringVar(&receiptPath, "receipt", "", "write the signed receipt here (default: the export file's path + .receipt.json)")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion (required; not read from the environment)")
	markNoEnv(cmd, "export", "receipt")
	return cmd
}
