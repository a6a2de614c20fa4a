package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	token string
	json  bool
}

// addClientFlags adds --token and --json to cmd and its subcommands.
func addClientFlags(cmd *cobra.Command) *clientFlags {
	cf := &clientFlags{}
	cmd.PersistentFlags().StringVar(&cf.token, "token", "",
		"operator token (default: the contents of <data-dir>/operator.token)")
	cmd.PersistentFlags().BoolVar(&cf.json, "json", false,
		"print the server's JSON response instead of a table")
	return cf
}

func tenantPath(id string) string { return "/v1/admin/tenants/" + url.PathEscape(id) }

func newTenantCommand(g *globals) *cobra.Command {
	cmd := groupCommand("tenant", "Create, list, show, suspend, resume, export and delete tenants, set their limits, retention and event settings, rotate their keys")
	cf := addClientFlags(cmd)
	cmd.AddCommand(
		newTenantCreateCommand(g, cf),
		newTenantListCommand(g, cf),
		newTenantShowCommand(g, cf),
		newTenantLimitsCommand(g, cf),
		newTenantRetentionCommand(g, cf),
		newTenantEventsCommand(g, cf),
		newTenantStateCommand(g, cf, "suspend"),
		newTenantStateCommand(g, cf, "resume"),
		newTenantDeleteCommand(g, cf),
		newTenantExportCommand(g, cf),
		newTenantOffboardCommand(g, cf),
		newTenantRotateKeyCommand(g, cf),
	)
	return cmd
}

func newTenantCreateCommand(g *globals, cf *clientFlags) *cobra.Command {
	var name, isolation, tier string
	cmd := &cobra.Command{
		Use:   "create ID",
		Short: "Provision a tenant",
		Long: `Provision a tenant. ID is 2-40 characters of a-z, 0-9 and '-', starts
with a letter and is immutable. The isolation mode decides where its data lives:
pooled (shared tables, the default) or database (a file of its own); schema
needs PostgreSQL.`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			body := struct {
				ID        string `json:"id"`
				Name      string `json:"name,omitempty"`
				Isolation string `json:"isolation,omitempty"`
				Tier      string `json:"tier,omitempty"`
			}{args[0], name, isolation, tier}
			var t tenantView
			raw, err := c.call(cmd.Context(), http.MethodPost, "/v1/admin/tenants", nil, body, &t)
			var ae *apiError
			if errors.As(err, &ae) {
				ae.tenant = args[0] // the path names no tenant; the hints need it
			}
			if err != nil {
				return fmt.Errorf("create tenant %s: %w", args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return writeFields(cmd.OutOrStdout(), t.fields())
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "display name (the ID if not given)")
	cmd.Flags().StringVar(&isolation, "isolation", "", "isolation mode: pooled (the default), database, or schema (needs PostgreSQL)")
	cmd.Flags().StringVar(&tier, "tier", "", "service tier: free, standard (the default) or enterprise")
	return cmd
}

func newTenantListCommand(g *globals, cf *clientFlags) *cobra.Command {
	var limit int
	var cursor string
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants",
		Long: `List tenants by id, one page at a time (--limit, --cursor), or all of them
with --all, which follows the pages' cursors.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--limit must be positive, got %d", limit)}
			}
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var items []json.RawMessage
			next := cursor
			seen := map[string]bool{}
			for {
				q := url.Values{}
				if limit > 0 {
					q.Set("limit", strconv.Itoa(limit))
				}
				if next != "" {
					q.Set("cursor", next)
				}
				var p page
				if _, err := c.call(cmd.Context(), http.MethodGet, "/v1/admin/tenants", q, nil, &p); err != nil {
					return fmt.Errorf("list tenants: %w", err)
				}
				items = append(items, p.Items...)
				next = p.NextCursor
				if !all || next == "" {
					break
				}
				if seen[next] {
					return fmt.Errorf("list tenants: the server returned the same cursor twice (a server bug; list pages with --cursor instead)")
				}
				seen[next] = true
			}
			if items == nil {
				items = []json.RawMessage{}
			}
			out := cmd.OutOrStdout()
			if cf.json {
				raw, err := json.Marshal(page{Items: items, NextCursor: next})
				if err != nil {
					return err
				}
				return printJSON(out, raw)
			}
			rows := make([][]string, 0, len(items))
			for _, it := range items {
				var t tenantView
				if err := json.Unmarshal(it, &t); err != nil {
					return fmt.Errorf("list tenants: decode tenant: %w", err)
				}
				rows = append(rows, t.row())
			}
			if len(rows) == 0 {
				fmt.Fprintln(out, "No tenants. Create one with `bulkhead tenant create ID`.")
				return nil
			}
			if err := writeTable(out, tenantListHeader, rows); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "More tenants: use --all, or --cursor %s for the next page.\n", next)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "tenants per page (default: the server's, 50)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "start after this cursor (the next_cursor of a previous page)")
	cmd.Flags().BoolVar(&all, "all", false, "list every tenant, following the cursors")
	return cmd
}

func newTenantShowCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a tenant's placement, state, usage and limits",
		Long: `Show a tenant's placement, state and usage, and below them its limits:
the effective value of each, the override stored for the tenant, and the usage
a quota counts (see ` + "`bulkhead tenant limits --help`" + `).`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var t tenantView
			raw, err := c.call(cmd.Context(), http.MethodGet, tenantPath(args[0]), nil, nil, &t)
			if err != nil {
				return fmt.Errorf("show tenant %s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			if cf.json {
				return printJSON(out, raw)
			}
			if err := writeFields(out, t.fields()); err != nil {
				return err
			}
			return writeLimitsTable(out, t)
		},
	}
}

// newTenantStateCommand builds suspend and resume, which differ only in
// the verb.
func newTenantStateCommand(g *globals, cf *clientFlags, verb string) *cobra.Command {
	short := "Suspend a tenant: its keys get 403 tenant_suspended until it is resumed"
	if verb == "resume" {
		short = "Resume a suspended tenant: its keys work again"
	}
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var t tenantView
			raw, err := c.call(cmd.Context(), http.MethodPost, tenantPath(args[0])+"/"+verb, nil, nil, &t)
			if err != nil {
				return fmt.Errorf("%s tenant %s: %w", verb, args[0], err)
			}
			out := cmd.OutOrStdout()
			if cf.json {
				return printJSON(out, raw)
			}
			if verb == "suspend" {
				_, err = fmt.Fprintf(out, "Tenant %s is %s: its keys get 403 tenant_suspended until `bulkhead tenant resume %s`.\n",
					cell(t.ID), cell(t.State), cell(t.ID))
			} else {
				_, err = fmt.Fprintf(out, "Tenant %s is %s: its keys work again.\n", cell(t.ID), cell(t.State))
			}
			return err
		},
	}
}

func newTenantDeleteCommand(g *globals, cf *clientFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete ID --yes",
		Short: "Offboard a tenant: delete its data and revoke its keys",
		Long: `Offboard a tenant: its records are deleted (its database file removed),
its keys revoked, and its id freed (creating it again starts empty). This
cannot be undone, so it needs --yes.`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("refusing to delete tenant %s without --yes: deleting removes all its data and revokes its keys, and cannot be undone (run `bulkhead tenant delete %s --yes`)",
					cell(args[0]), cell(args[0]))
			}
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodDelete, tenantPath(args[0]), nil, nil, nil)
			if err != nil {
				return fmt.Errorf("delete tenant %s: %w", args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Tenant %s deleted: its data is removed and its keys are revoked.\n", cell(args[0]))
			return err
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion (required; not read from the environment)")
	return cmd
}
