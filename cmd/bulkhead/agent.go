package main

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// agentsPath is the control plane's support agents.
const agentsPath = "/v1/admin/support-agents"

// agentView is a support agent as the server returns it; Token only on
// creation.
type agentView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Token     string     `json:"token,omitempty"`
}

var agentListHeader = []string{"ID", "NAME", "CREATED", "REVOKED"}

func (a agentView) row() []string {
	return []string{a.ID, a.Name, formatTime(a.CreatedAt), formatTimePtr(a.RevokedAt)}
}

func newAgentCommand(g *globals) *cobra.Command {
	cmd := groupCommand("agent", "Create, list and revoke support agents (operator staff who read a tenant's data under a grant)")
	cf := addClientFlags(cmd)
	cmd.AddCommand(newAgentCreateCommand(g, cf), newAgentListCommand(g, cf), newAgentRevokeCommand(g, cf))
	return cmd
}

func newAgentCreateCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create a support agent; its token is shown once",
		Long: `Create a support agent. Its token (bks_...) reads a tenant's data only with
the header Bulkhead-Act-As-Tenant and a live grant (bulkhead grant create). The
token is printed once and cannot be shown again: the server keeps only its hash.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			body := struct {
				Name string `json:"name"`
			}{args[0]}
			var a agentView
			raw, err := c.call(cmd.Context(), http.MethodPost, agentsPath, nil, body, &a)
			if err != nil {
				return fmt.Errorf("create support agent %s: %w", args[0], err)
			}
			if cf.json {
				err = printJSON(cmd.OutOrStdout(), raw)
			} else {
				err = writeFields(cmd.OutOrStdout(), [][2]string{
					{"ID", a.ID},
					{"Name", a.Name},
					{"Created", formatTime(a.CreatedAt)},
					{"Token", a.Token},
				})
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the token now: it is not shown again.")
			return nil
		},
	}
}

func newAgentListCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the support agents, revoked ones included (never their tokens)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listing[agentView]{what: "list support agents", path: agentsPath, header: agentListHeader,
				empty: "No support agents. Create one with `bulkhead agent create NAME`."}.run(cmd, g, cf)
		},
	}
}

func newAgentRevokeCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke AGENT_ID",
		Short: "Revoke a support agent, effective at once",
		Args:  exactArgs("AGENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodDelete, agentsPath+"/"+url.PathEscape(args[0]), nil, nil, nil)
			if err != nil {
				return fmt.Errorf("revoke support agent %s: %w", args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Support agent %s revoked: requests with its token get 401 from now on.\n", cell(args[0]))
			return err
		},
	}
}
