package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func newKeyCommand(g *globals) *cobra.Command {
	cmd := groupCommand("key", "Issue, list and revoke tenant API keys")
	cf := addClientFlags(cmd)
	cmd.AddCommand(newKeyCreateCommand(g, cf), newKeyRevokeCommand(g, cf), newKeyListCommand(g, cf))
	return cmd
}

func newKeyCreateCommand(g *globals, cf *clientFlags) *cobra.Command {
	var role, name string
	cmd := &cobra.Command{
		Use:   "create TENANT --role ROLE",
		Short: "Issue an API key for a tenant; its token is shown once",
		Long: `Issue an API key bound to TENANT. Requests with it act as that tenant and
no other. Roles: admin ⊃ writer ⊃ reader. The token is printed once and cannot
be shown again: the server keeps only its hash.`,
		Args: exactArgs("TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			body := struct {
				Role string `json:"role"`
				Name string `json:"name,omitempty"`
			}{role, name}
			var k keyView
			raw, err := c.call(cmd.Context(), http.MethodPost, tenantPath(args[0])+"/keys", nil, body, &k)
			if err != nil {
				return fmt.Errorf("create key for tenant %s: %w", args[0], err)
			}
			if cf.json {
				err = printJSON(cmd.OutOrStdout(), raw)
			} else {
				err = writeFields(cmd.OutOrStdout(), [][2]string{
					{"ID", k.ID},
					{"Tenant", k.Tenant},
					{"Role", k.Role},
					{"Name", k.Name},
					{"Created", formatTime(k.CreatedAt)},
					{"Token", k.Token},
				})
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the token now: it is not shown again.")
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "what the key may do: admin, writer or reader (required)")
	cmd.Flags().StringVar(&name, "name", "", "a name to tell keys apart")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func newKeyRevokeCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TENANT KEY_ID",
		Short: "Revoke a tenant's API key, effective at once",
		Args:  exactArgs("TENANT", "KEY_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			path := tenantPath(args[0]) + "/keys/" + url.PathEscape(args[1])
			raw, err := c.call(cmd.Context(), http.MethodDelete, path, nil, nil, nil)
			if err != nil {
				return fmt.Errorf("revoke key %s of tenant %s: %w", args[1], args[0], err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Key %s of tenant %s revoked: requests with it get 401 from now on.\n",
				cell(args[1]), cell(args[0]))
			return err
		},
	}
}

func newKeyListCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list TENANT",
		Short: "List a tenant's API keys (never their tokens)",
		Args:  exactArgs("TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listing[keyView]{what: "list keys of tenant " + args[0], path: tenantPath(args[0]) + "/keys", header: keyListHeader,
				empty: fmt.Sprintf("Tenant %s has no keys. Issue one with `bulkhead key create %s --role writer`.", cell(args[0]), cell(args[0]))}.run(cmd, g, cf)
		},
	}
}
