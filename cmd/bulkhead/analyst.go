package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// analystsPath is the control plane's analysts.
const analystsPath = "/v1/admin/analysts"

// analystView is an analyst as the server returns it; Token only on
// creation. Budgets are ε, kept as JSON numbers as the server wrote them.
type analystView struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Budget    json64     `json:"budget"`
	Spent     json64     `json:"spent"`
	Remaining json64     `json:"remaining"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Token     string     `json:"token,omitempty"`
}

// json64 is a JSON number printed as the server wrote it.
type json64 string

func (n *json64) UnmarshalJSON(b []byte) error { *n = json64(b); return nil }

var analystListHeader = []string{"ID", "NAME", "BUDGET", "SPENT", "REMAINING", "CREATED", "REVOKED"}

func (a analystView) row() []string {
	return []string{a.ID, a.Name, string(a.Budget), string(a.Spent), string(a.Remaining), formatTime(a.CreatedAt), formatTimePtr(a.RevokedAt)}
}

func newAnalystCommand(g *globals) *cobra.Command {
	cmd := groupCommand("analyst", "Create, list and revoke analysts (who query noisy aggregates across tenants within a privacy budget)")
	cf := addClientFlags(cmd)
	cmd.AddCommand(newAnalystCreateCommand(g, cf), newAnalystListCommand(g, cf), newAnalystRevokeCommand(g, cf))
	return cmd
}

func newAnalystCreateCommand(g *globals, cf *clientFlags) *cobra.Command {
	var budget string
	cmd := &cobra.Command{
		Use:   "create NAME --budget EPSILON",
		Short: "Create an analyst with a privacy budget; its token is shown once",
		Long: `Create an analyst. Its token (bka_...) reaches only POST /v1/analytics/query:
noisy counts and sums across tenants, each group backed by at least 5 tenants,
each query spending its epsilon from the analyst's budget (--budget, the total
epsilon, a multiple of 0.000001). The token reaches no tenant's data and no
admin route. It is printed once: the server keeps only its hash.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := strconv.ParseFloat(budget, 64); err != nil {
				return &usageError{cmd: cmd.CommandPath(),
					err: fmt.Errorf("--budget %q is not a number (the total epsilon, e.g. 1 or 0.5)", budget)}
			}
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			body := map[string]any{"name": args[0], "budget": json.Number(budget)}
			var a analystView
			raw, err := c.call(cmd.Context(), http.MethodPost, analystsPath, nil, body, &a)
			if err != nil {
				return fmt.Errorf("create analyst %s: %w", args[0], err)
			}
			if cf.json {
				err = printJSON(cmd.OutOrStdout(), raw)
			} else {
				err = writeFields(cmd.OutOrStdout(), [][2]string{
					{"ID", a.ID}, {"Name", a.Name}, {"Budget", string(a.Budget)},
					{"Created", formatTime(a.CreatedAt)}, {"Token", a.Token},
				})
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the token now: it is not shown again.")
			return nil
		},
	}
	cmd.Flags().StringVar(&budget, "budget", "", "the analyst's total privacy budget (epsilon), e.g. 1 (required)")
	_ = cmd.MarkFlagRequired("budget")
	markNoEnv(cmd, "budget")
	return cmd
}

func newAnalystListCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the analysts with their budgets, revoked ones included (never their tokens)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listing[analystView]{what: "list analysts", path: analystsPath, header: analystListHeader,
				empty: "No analysts. Create one with `bulkhead analyst create NAME --budget 1`."}.run(cmd, g, cf)
		},
	}
}

func newAnalystRevokeCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ANALYST_ID",
		Short: "Revoke an analyst, effective at once",
		Args:  exactArgs("ANALYST_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			raw, err := c.call(cmd.Context(), http.MethodDelete, analystsPath+"/"+url.PathEscape(args[0]), nil, nil, nil)
			if err != nil {
				return fmt.Errorf("revoke analyst %s: %w", args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Analyst %s revoked: requests with its token get 401 from now on.\n", cell(args[0]))
			return err
		},
	}
}
