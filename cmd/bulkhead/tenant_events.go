package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"
)

func newTenantEventsCommand(g *globals, cf *clientFlags) *cobra.Command {
	var data bool
	cmd := &cobra.Command{
		Use:   "events ID",
		Short: "Show or change a tenant's event settings (whether its change events carry the record's data)",
		Long: `Show or change a tenant's event settings. Every write and delete of a
tenant's records appends a change event to its outbox (collection, id,
operation, version, time). With --data=true the events of the tenant's
writes also carry the record's data, sealed in the outbox like the record
itself when encryption is on; --data=false (the default for a new tenant)
leaves it out. The setting applies to writes from the next request on and
belongs to the tenant: a tenant deleted and created again starts without it.
With no flags the command prints the settings.`,
		Example: `  bulkhead tenant events acme
  bulkhead tenant events acme --data=true
  bulkhead tenant events acme --data=false --json`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			change := cmd.Flags().Changed("data")
			if change {
				body := map[string]any{"events": map[string]bool{"data": data}}
				if _, err := c.call(ctx, http.MethodPatch, tenantPath(id), nil, body, nil); err != nil {
					return fmt.Errorf("change event settings of tenant %s: %w", id, err)
				}
			}
			var t tenantView
			raw, err := c.call(ctx, http.MethodGet, tenantPath(id), nil, nil, &t)
			if err != nil {
				if change {
					return fmt.Errorf("tenant %s's event settings were changed, but reading them back failed: %w", id, err)
				}
				return fmt.Errorf("show event settings of tenant %s: %w", id, err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return writeEventSettings(cmd.OutOrStdout(), t)
		},
	}
	cmd.Flags().BoolVar(&data, "data", false, "whether the tenant's events carry the record's data (--data=true or --data=false)")
	markNoEnv(cmd, "data")
	return cmd
}

// writeEventSettings prints the settings in a sentence.
func writeEventSettings(w io.Writer, t tenantView) error {
	if t.Events != nil && t.Events.Data {
		_, err := fmt.Fprintf(w, "Tenant %s's events carry the record's data (sealed like the record when encryption is on).\n", cell(t.ID))
		return err
	}
	_, err := fmt.Fprintf(w, "Tenant %s's events do not carry the record's data: only collection, id, operation, version and time.\n", cell(t.ID))
	return err
}
