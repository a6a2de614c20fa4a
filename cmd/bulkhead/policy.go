package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/policy"
)

func newPolicyCommand() *cobra.Command {
	cmd := groupCommand("policy", "Validate and test Cedar authorization policies")
	cmd.AddCommand(newPolicyCheckCommand())
	return cmd
}

func newPolicyCheckCommand() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Parse a policy directory and run the test cases written next to the policies",
		Long: `Parse the policy set that "serve --policy-dir D" would load (the embedded
default set plus D's *.cedar files; a default.cedar in D replaces the embedded
one) and run the test cases in D's *.cases.json files against it.

A case file is a JSON array of cases:

  [{"name": "reader cannot write", "expect": "deny",
    "request": {"principal": {"kind": "tenant_key", "id": "k1", "tenant": "acme", "role": "reader"},
                "action": "record.write", "tenant": "acme", "collection": "orders",
                "act_as": false, "grant_live": false}}]

Without --dir, the embedded default set is checked against its own cases.
Exit status: 0 when everything parses and every case passes, 1 otherwise.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := policy.Check(dir)
			if err != nil {
				return fmt.Errorf("policy check: %s", indentLines(err.Error()))
			}
			out := cmd.OutOrStdout()
			failed := len(rep.Failures())
			if asJSON {
				b, err := json.MarshalIndent(struct {
					OK     bool `json:"ok"`
					Failed int  `json:"failed"`
					policy.Report
				}{rep.OK(), failed, rep}, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\n", b)
			} else {
				rows := make([][]string, 0, len(rep.Cases))
				for _, c := range rep.Cases {
					ok, got := "ok", c.Got
					if !c.OK {
						ok = "FAIL"
					}
					if c.Error != "" {
						got += ": " + c.Error
					} else if len(c.Policies) > 0 {
						got += " (" + strings.Join(c.Policies, ", ") + ")"
					}
					rows = append(rows, []string{c.File, c.Name, c.Expect, got, ok})
				}
				if err := writeTable(out, []string{"FILE", "CASE", "EXPECTED", "GOT", "OK"}, rows); err != nil {
					return err
				}
				fmt.Fprintf(out, "\n%d policies from %d files; %d cases, %d passed, %d failed\n",
					len(rep.Policies), len(rep.Files), len(rep.Cases), len(rep.Cases)-failed, failed)
			}
			if failed > 0 {
				return fmt.Errorf("policy check: %d of %d cases failed (see the FAIL rows)", failed, len(rep.Cases))
			}
			if len(rep.Cases) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: no *%s files in %s; only parsing was checked\n", policy.CasesSuffix, dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "policy directory (*.cedar policies and *.cases.json test cases); empty checks the embedded default set")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	return cmd
}

// indentLines puts each line of a multi-line (joined) error on its own
// indented line, so several files' parse errors stay readable.
func indentLines(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	return "\n  " + strings.ReplaceAll(s, "\n", "\n  ")
}
