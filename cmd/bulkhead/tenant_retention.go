package main

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// parseRetentionEdit turns --set COLLECTION=DURATION and --unset
// COLLECTION into the "retention" object of a PATCH: the server merges it
// into the stored rules (null removes one), so no read-modify-write is
// needed. Names and durations are checked by the server, which changes
// nothing when it refuses; here only the form is.
func parseRetentionEdit(set, unset []string) (map[string]any, error) {
	edit := map[string]any{}
	for _, kv := range set {
		name, value, ok := strings.Cut(kv, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" {
			return nil, fmt.Errorf("--set %q: want COLLECTION=DURATION, e.g. --set events=720h", kv)
		}
		if _, dup := edit[name]; dup {
			return nil, fmt.Errorf("--set names %s twice; give it once", name)
		}
		edit[name] = value
	}
	for _, name := range unset {
		name = strings.TrimSpace(name)
		if _, dup := edit[name]; dup {
			return nil, fmt.Errorf("%s is in --set or --unset twice; keep one of them", name)
		}
		edit[name] = nil
	}
	return edit, nil
}

func newTenantRetentionCommand(g *globals, cf *clientFlags) *cobra.Command {
	var set, unset []string
	cmd := &cobra.Command{
		Use:   "retention ID",
		Short: "Show or change a tenant's retention rules (per collection, a maximum record age)",
		Long: `Show or change a tenant's retention rules. A rule gives a collection a maximum
age: the server's background sweep (every --retention-interval of serve)
purges the tenant's records of that collection last written longer ago,
the oldest first, and records each purge in the tenant's audit log.

--set COLLECTION=DURATION sets a rule (a Go duration of at least 1s: 720h,
90m, 30s); --unset COLLECTION removes one. Other collections keep their
rules. With no flags the command prints the rules.`,
		Example: `  bulkhead tenant retention acme
  bulkhead tenant retention acme --set events=720h --set tmp=1h
  bulkhead tenant retention acme --unset tmp`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			edit, err := parseRetentionEdit(set, unset)
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if len(edit) > 0 {
				if _, err := c.call(ctx, http.MethodPatch, tenantPath(id), nil, map[string]any{"retention": edit}, nil); err != nil {
					return fmt.Errorf("change retention rules of tenant %s: %w", id, err)
				}
			}
			var t tenantView
			raw, err := c.call(ctx, http.MethodGet, tenantPath(id), nil, nil, &t)
			if err != nil {
				if len(edit) > 0 {
					return fmt.Errorf("tenant %s's retention rules were changed, but reading them back failed: %w", id, err)
				}
				return fmt.Errorf("show retention rules of tenant %s: %w", id, err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return writeRetentionTable(cmd.OutOrStdout(), t)
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "set a rule, `COLLECTION=DURATION` (repeatable)")
	cmd.Flags().StringArrayVar(&unset, "unset", nil, "remove the rule of `COLLECTION` (repeatable)")
	markNoEnv(cmd, "set", "unset")
	return cmd
}

// writeRetentionTable prints the rules, one row per collection, by name.
func writeRetentionTable(w io.Writer, t tenantView) error {
	if len(t.Retention) == 0 {
		_, err := fmt.Fprintf(w, "Tenant %s has no retention rules: its records are kept until deleted.\n", cell(t.ID))
		return err
	}
	var rows [][]string
	for _, c := range slices.Sorted(maps.Keys(t.Retention)) {
		rows = append(rows, []string{c, t.Retention[c]})
	}
	return writeTable(w, []string{"COLLECTION", "MAX AGE"}, rows)
}
