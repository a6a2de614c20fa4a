package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/identity"
)

// issuerView is an identity provider a tenant trusts, as the server
// returns it (identity.Issuer's JSON form).
type issuerView identity.Issuer

var issuerListHeader = []string{"ISSUER", "AUDIENCE", "TENANT CLAIM", "ROLE CLAIM", "JWKS", "ALGORITHMS"}

func (i issuerView) row() []string {
	return []string{i.Issuer, i.Audience, i.TenantClaim, i.RoleClaim, i.JWKSURL, strings.Join(i.Algorithms, ",")}
}

func newIssuerCommand(g *globals) *cobra.Command {
	cmd := groupCommand("issuer", "Show and set the identity providers whose JWTs a tenant accepts")
	cf := addClientFlags(cmd)
	cmd.AddCommand(newIssuerGetCommand(g, cf), newIssuerSetCommand(g, cf))
	return cmd
}

func newIssuerGetCommand(g *globals, cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get TENANT",
		Short: "Show the identity providers TENANT trusts (--json gives a file for issuer set)",
		Args:  exactArgs("TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var p page
			raw, err := c.call(cmd.Context(), http.MethodGet, tenantPath(args[0])+"/issuers", nil, nil, &p)
			if err != nil {
				return fmt.Errorf("get issuers of tenant %s: %w", args[0], err)
			}
			return printIssuers(cmd, cf, args[0], raw, p)
		},
	}
}

func newIssuerSetCommand(g *globals, cf *clientFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "set TENANT --file ISSUERS.json",
		Short: "Replace the identity providers TENANT trusts with those in a JSON file",
		Long: `Replace the identity providers whose JWTs TENANT accepts with the list in
the file: a JSON array of issuers, or the object "bulkhead issuer get --json"
prints. Each issuer has "issuer" and "audience", and optionally "tenant_claim",
"role_claim", "jwks_url", "role_map" and "algorithms" (see docs/identity.md).
An empty array [] removes them all.`,
		Args: exactArgs("TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := readIssuersFile(file)
			if err != nil {
				return err
			}
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			var p page
			raw, err := c.call(cmd.Context(), http.MethodPut, tenantPath(args[0])+"/issuers", nil, list, &p)
			if err != nil {
				return fmt.Errorf("set issuers of tenant %s: %w", args[0], err)
			}
			return printIssuers(cmd, cf, args[0], raw, p)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "the JSON file of issuers (required)")
	_ = cmd.MarkFlagRequired("file")
	markNoEnv(cmd, "file")
	return cmd
}

// readIssuersFile reads a JSON list of issuers, or an {"items": [...]}
// object as issuer get --json prints it. The issuers are sent as they are
// in the file; the server checks them.
func readIssuersFile(path string) ([]json.RawMessage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read issuers file: %w", err)
	}
	b = bytes.TrimSpace(b)
	var list []json.RawMessage
	if len(b) > 0 && b[0] == '{' {
		var p page
		if err := json.Unmarshal(b, &p); err != nil || p.Items == nil {
			return nil, fmt.Errorf("issuers file %s: want a JSON array of issuers or {\"items\": [...]}", path)
		}
		list = p.Items
	} else if err := json.Unmarshal(b, &list); err != nil || list == nil {
		return nil, fmt.Errorf("issuers file %s: want a JSON array of issuers (e.g. [{\"issuer\": \"https://idp.example.com\", \"audience\": \"bulkhead-api\"}])", path)
	}
	return list, nil
}

func printIssuers(cmd *cobra.Command, cf *clientFlags, tenantID string, raw []byte, p page) error {
	out := cmd.OutOrStdout()
	if cf.json {
		return printJSON(out, raw)
	}
	if len(p.Items) == 0 {
		_, err := fmt.Fprintf(out, "Tenant %s trusts no identity provider: only API keys work. Add one with `bulkhead issuer set %s --file issuers.json`.\n",
			cell(tenantID), cell(tenantID))
		return err
	}
	rows := make([][]string, 0, len(p.Items))
	for _, it := range p.Items {
		var i issuerView
		if err := json.Unmarshal(it, &i); err != nil {
			return fmt.Errorf("issuers of tenant %s: decode issuer: %w", tenantID, err)
		}
		rows = append(rows, i.row())
	}
	return writeTable(out, issuerListHeader, rows)
}
