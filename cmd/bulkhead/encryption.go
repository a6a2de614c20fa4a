package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// jobView is a re-encryption job as GET /v1/admin/jobs/{job} returns it.
type jobView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	State     string    `json:"state"`
	Tenant    string    `json:"tenant"`
	Pass      int       `json:"pass"`
	Scanned   int64     `json:"scanned"`
	Resealed  int64     `json:"resealed"`
	Destroyed []string  `json:"destroyed_keys"`
	Error     string    `json:"error"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (j jobView) fields() [][2]string {
	pass := "-"
	if j.Pass > 0 {
		pass = strconv.Itoa(j.Pass)
	}
	return [][2]string{
		{"Job", j.ID},
		{"Kind", j.Kind},
		{"State", j.State},
		{"Tenant", j.Tenant},
		{"Pass", pass},
		{"Scanned", strconv.FormatInt(j.Scanned, 10)},
		{"Resealed", strconv.FormatInt(j.Resealed, 10)},
		{"Destroyed keys", strings.Join(j.Destroyed, ", ")},
		{"Error", j.Error},
		{"Created", formatTime(j.CreatedAt)},
		{"Updated", formatTime(j.UpdatedAt)},
	}
}

// progress is the one-line progress of a running job (stderr of --wait).
func (j jobView) progress() string {
	return fmt.Sprintf("%s: %s, pass %d, %d records scanned, %d re-encrypted", cell(j.ID), cell(j.State), j.Pass, j.Scanned, j.Resealed)
}

func jobPath(id string) string { return "/v1/admin/jobs/" + url.PathEscape(id) }

// waitPoll is how often rotate-key --wait asks for the job's progress.
const waitPoll = 250 * time.Millisecond

func newTenantRotateKeyCommand(g *globals, cf *clientFlags) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "rotate-key ID [--wait]",
		Short: "Rotate a tenant's encryption keys: re-encrypt its records in the background",
		Long: `Rotate a tenant's encryption keys. New writes use the new key at once; a
background job re-encrypts the tenant's records under it and then destroys the
old key, after which copies of the records made before (backups) no longer
decrypt. The job survives restarts. The command prints the job; follow it with
` + "`bulkhead job show JOB`" + `, or pass --wait to wait here until it is done
(progress on stderr).`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var started struct {
				Job jobView `json:"job"`
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, tenantPath(args[0])+"/encryption/rotate", nil, nil, &started)
			if err != nil {
				return fmt.Errorf("rotate the keys of tenant %s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if !wait {
				if cf.json {
					return printJSON(out, raw)
				}
				if err := writeFields(out, started.Job.fields()); err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.ErrOrStderr(), "Follow it with `bulkhead job show %s`.\n", cell(started.Job.ID))
				return err
			}
			j, raw, err := waitJob(cmd.Context(), c, started.Job.ID, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if cf.json {
				err = printJSON(out, raw)
			} else {
				err = writeFields(out, j.fields())
			}
			if err == nil && j.State != "done" {
				err = fmt.Errorf("job %s %s: %s (see `bulkhead job show %s`, and the server's log)", cell(j.ID), cell(j.State), cell(j.Error), cell(j.ID))
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the job is done, printing its progress on stderr")
	return cmd
}

// waitJob polls the job until it is no longer running, printing its
// progress to progress whenever it changes.
func waitJob(ctx context.Context, c *client, id string, progress io.Writer) (jobView, []byte, error) {
	last := ""
	for {
		var j jobView
		raw, err := c.call(ctx, http.MethodGet, jobPath(id), nil, nil, &j)
		if err != nil {
			return j, nil, fmt.Errorf("follow job %s: %w", id, err)
		}
		if line := j.progress(); line != last {
			fmt.Fprintln(progress, line)
			last = line
		}
		if j.State != "running" {
			return j, raw, nil
		}
		select {
		case <-ctx.Done():
			return j, nil, fmt.Errorf("stopped waiting for job %s (it goes on in the server; see `bulkhead job show %s`): %w", id, id, ctx.Err())
		case <-time.After(waitPoll):
		}
	}
}

func newJobCommand(g *globals) *cobra.Command {
	cmd := groupCommand("job", "Show background jobs (key rotations, encryption of old records)")
	cf := addClientFlags(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "show JOB",
		Short: "Show a job's state and progress",
		Args:  exactArgs("JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var j jobView
			raw, err := c.call(cmd.Context(), http.MethodGet, jobPath(args[0]), nil, nil, &j)
			if err != nil {
				return fmt.Errorf("show job %s: %w", args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return writeFields(cmd.OutOrStdout(), j.fields())
		},
	})
	return cmd
}

func newKeyringCommand(g *globals) *cobra.Command {
	cmd := groupCommand("keyring", "Rotate the keyring that wraps the tenants' encryption keys")
	cf := addClientFlags(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Rotate the keyring: a new key wraps every tenant's keys, the old one is destroyed",
		Long: `Rotate the keyring (the key-encryption key in <data-dir>/keyring, or --keyring):
the server adds a new key, wraps every tenant's keys again with it, and destroys
the old one. Copies of the key store made before (backups of keys.db, or of the
PostgreSQL schema bulkhead_keys) no longer open with the keyring, so restoring
such a backup needs a copy of the keyring from the same time. Run it after
deleting tenants, so that backups made before cannot decrypt their data with
the current keyring.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var res struct {
				Primary   uint32   `json:"primary_key"`
				Rewrapped int      `json:"rewrapped"`
				Retired   []uint32 `json:"retired_keys"`
			}
			raw, err := c.call(cmd.Context(), http.MethodPost, "/v1/admin/keyring/rotate", nil, nil, &res)
			if err != nil {
				return fmt.Errorf("rotate the keyring: %w", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			retired := make([]string, 0, len(res.Retired))
			for _, k := range res.Retired {
				retired = append(retired, strconv.FormatUint(uint64(k), 10))
			}
			return writeFields(cmd.OutOrStdout(), [][2]string{
				{"Primary key", strconv.FormatUint(uint64(res.Primary), 10)},
				{"Rewrapped", strconv.Itoa(res.Rewrapped) + " tenant keysets"},
				{"Retired keys", strings.Join(retired, ", ")},
			})
		},
	})
	return cmd
}
