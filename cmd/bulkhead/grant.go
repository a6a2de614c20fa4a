package main

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// grantView is a support grant as the server returns it.
type grantView struct {
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	AgentID   string     `json:"agent_id"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

var grantListHeader = []string{"ID", "AGENT", "REASON", "CREATED", "EXPIRES", "REVOKED"}

func (gr grantView) row() []string {
	return []string{gr.ID, gr.AgentID, gr.Reason, formatTime(gr.CreatedAt), formatTime(gr.ExpiresAt), formatTimePtr(gr.RevokedAt)}
}

func newGrantCommand(g *globals) *cobra.Command {
	cmd := groupCommand("grant", "Give a support agent time-limited read access to a tenant, list and revoke grants")
	cf := addClientFlags(cmd)
	cmd.AddCommand(newGrantCreateCommand(g, cf), newGrantListCommand(g, cf), newGrantRevokeCommand(g, cf))
	return cmd
}

func newGrantCreateCommand(g *globals, cf *clientFlags) *cobra.Command {
	var agent, reason, expiresIn, expiresAt string
	cmd := &cobra.Command{
		Use:   "create TENANT --agent AGENT_ID --reason TEXT --expires-in DURATION",
		Short: "Let a support agent read a tenant's data until the grant expires",
		Long: `Grant support agent AGENT_ID read access to TENANT's data, for the reason
given, until --expires-in (a duration such as 30m or 4h) or --expires-at (RFC
3339) — at most 24h ahead. The grant is recorded on the tenant's audit chain.`,
		Args: exactArgs("TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			body := map[string]string{"agent_id": agent, "reason": reason}
			if expiresIn != "" {
				body["expires_in"] = expiresIn
			}
			if expiresAt != "" {
				body["expires_at"] = expiresAt
			}
			var gr grantView
			raw, err := c.call(cmd.Context(), http.MethodPost, tenantPath(args[0])+"/grants", nil, body, &gr)
			if err != nil {
				return fmt.Errorf("create grant on tenant %s: %w", args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return writeFields(cmd.OutOrStdout(), [][2]string{
				{"ID", gr.ID},
				{"Tenant", gr.Tenant},
				{"Agent", gr.AgentID},
				{"Reason", gr.Reason},
				{"Created", formatTime(gr.CreatedAt)},
				{"Expires", formatTime(gr.ExpiresAt)},
			})
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "the support agent's id (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the agent needs access, e.g. a ticket (required)")
	cmd.Flags().StringVar(&expiresIn, "expires-in", "", "how long the grant lasts, e.g. 30m or 4h (at most 24h)")
	cmd.Flags().StringVar(&expiresAt, "expires-at", "", "when the grant ends, RFC 3339 (instead of --expires-in)")
	_ = cmd.MarkFlagRequired("agent")
	_ = cmd.MarkFlagRequired("reason")
	cmd.MarkFlagsOneRequired("expires-in", "expires-at")
	cmd.MarkFlagsMutuallyExclusive("expires-in", "expires-at")
	// A grant left in the environment would be given again by every later
	// command: these are read from the command line only.
	markNoEnv(cmd, "agent", "reason", "expires-in", "expires-at")
	return cmd
}

func newGrantListCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list TENANT",
		Short: "List a tenant's support grants, expired and revoked ones included",
		Args:  exactArgs("TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listing[grantView]{what: "list grants of tenant " + args[0], path: tenantPath(args[0]) + "/grants", header: grantListHeader,
				empty: fmt.Sprintf("Tenant %s has no support grants.", cell(args[0]))}.run(cmd, g, cf)
		},
	}
}

func newGrantRevokeCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TENANT GRANT_ID",
		Short: "Revoke a support grant, effective at once",
		Args:  exactArgs("TENANT", "GRANT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			path := tenantPath(args[0]) + "/grants/" + url.PathEscape(args[1])
			raw, err := c.call(cmd.Context(), http.MethodDelete, path, nil, nil, nil)
			if err != nil {
				return fmt.Errorf("revoke grant %s of tenant %s: %w", args[1], args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Grant %s of tenant %s revoked: the agent's next request as %s gets 403.\n",
				cell(args[1]), cell(args[0]), cell(args[0]))
			return err
		},
	}
}
