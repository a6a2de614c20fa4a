package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/export"
	"github.com/bulkhead-dev/bulkhead/receipt"
)

func newReceiptCommand(g *globals) *cobra.Command {
	cmd := groupCommand("receipt", "Check offboarding receipts")
	cmd.AddCommand(newReceiptVerifyCommand(g))
	return cmd
}

// verdict is what receipt verify found (its --json output).
type verdict struct {
	Valid     bool            `json:"valid"`
	KeyID     string          `json:"key_id"`
	Signature string          `json:"signature"` // "valid" or why not
	Export    *exportCheck    `json:"export,omitempty"`
	Receipt   json.RawMessage `json:"receipt,omitempty"`
}

// exportCheck compares an export file with the receipt.
type exportCheck struct {
	File    string         `json:"file"`
	Matches bool           `json:"matches"`
	Found   export.Summary `json:"found"`
}

func newReceiptVerifyCommand(g *globals) *cobra.Command {
	var pubFlag, serverAddr, exportPath, token string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify FILE [--public-key FILE_OR_BASE64 | --server URL] [--export FILE]",
		Short: "Check an offboarding receipt's signature, and an export against it",
		Long: `Check that an offboarding receipt (from ` + "`bulkhead tenant offboard`" + `) was
signed by the server's receipt key and not changed since: against the public
key given with --public-key (base64, or a file holding it or the JSON of GET
/v1/admin/receipt-key), or the key fetched from a server with --server (with
the operator token). With --export, also check that the export file has the
SHA-256 and record count the receipt names. Exits 1 on any mismatch.`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (pubFlag == "") == (serverAddr == "") {
				return &usageError{cmd: cmd.CommandPath(), err: errors.New("give exactly one of --public-key and --server")}
			}
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read receipt: %w", err)
			}
			signed, err := receipt.Parse(raw)
			if err != nil {
				return fmt.Errorf("%s is not a receipt: %w", args[0], err)
			}
			pub, err := receiptKey(cmd, g, pubFlag, serverAddr, token)
			if err != nil {
				return err
			}
			v := verdict{KeyID: receipt.KeyID(pub), Signature: "valid"}
			rc, verr := receipt.Verify(pub, signed)
			if verr != nil {
				v.Signature = verr.Error()
			} else {
				v.Receipt = signed.Receipt
			}
			if exportPath != "" {
				f, err := os.Open(exportPath)
				if err != nil {
					return fmt.Errorf("read export: %w", err)
				}
				sum, err := export.Summarize(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("read export: %w", err)
				}
				v.Export = &exportCheck{File: exportPath, Found: sum,
					Matches: verr == nil && !sum.Partial && sum.SHA256 == rc.Export.SHA256 && sum.Records == rc.Export.Records}
			}
			v.Valid = verr == nil && (v.Export == nil || v.Export.Matches)
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.Marshal(v)
				if err := printJSON(out, b); err != nil {
					return err
				}
			} else {
				printVerdict(out, v, rc)
			}
			if !v.Valid {
				return errors.New("the receipt does not check out (see above)")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubFlag, "public-key", "", "the server's receipt public key: base64, or a file holding it")
	cmd.Flags().StringVar(&serverAddr, "server", "", "fetch the public key from this server (host:port or URL) with the operator token")
	cmd.Flags().StringVar(&exportPath, "export", "", "also check this export file's SHA-256 and record count")
	cmd.Flags().StringVar(&token, "token", "", "operator token for --server (default: the contents of <data-dir>/operator.token)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the verdict as JSON")
	markNoEnv(cmd, "public-key", "server", "export")
	return cmd
}

// receiptKey reads the public key from --public-key or fetches it from --server.
func receiptKey(cmd *cobra.Command, g *globals, pubFlag, serverAddr, token string) (ed25519.PublicKey, error) {
	text := pubFlag
	if serverAddr != "" {
		c, err := newClient(&globals{addr: serverAddr, dataDir: g.dataDir}, token)
		if err != nil {
			return nil, err
		}
		var k struct {
			PublicKey string `json:"public_key"`
		}
		if _, err := c.call(cmd.Context(), http.MethodGet, "/v1/admin/receipt-key", nil, nil, &k); err != nil {
			return nil, fmt.Errorf("fetch the receipt key: %w", err)
		}
		text = k.PublicKey
	} else if b, err := os.ReadFile(pubFlag); err == nil {
		text = string(b)
		var k struct {
			PublicKey string `json:"public_key"`
		}
		if strings.HasPrefix(strings.TrimSpace(text), "{") && json.Unmarshal(b, &k) == nil {
			text = k.PublicKey
		}
	}
	pub, err := receipt.ParsePublicKey(text)
	if err != nil {
		return nil, fmt.Errorf("--public-key: %w (or a file holding it)", err)
	}
	return pub, nil
}

func printVerdict(w io.Writer, v verdict, rc receipt.Receipt) {
	ok := func(b bool) string {
		if b {
			return "OK"
		}
		return "MISMATCH"
	}
	f := [][2]string{{"Signature", ok(v.Signature == "valid") + " (key " + v.KeyID + ")"}}
	if v.Signature != "valid" {
		f = append(f, [2]string{"Problem", v.Signature})
	} else {
		f = append(f, [2]string{"Tenant", rc.Tenant}, [2]string{"Created", formatTimePtr(rc.TenantCreatedAt)},
			[2]string{"Deleted", formatTime(rc.DeletedAt)},
			[2]string{"Records", fmt.Sprintf("%d in %d collections", rc.Records, len(rc.Collections))},
			[2]string{"Export", fmt.Sprintf("%d records, SHA-256 %s", rc.Export.Records, rc.Export.SHA256)},
			[2]string{"Destroyed keys", strings.Join(rc.DestroyedKeys, ", ")})
	}
	if e := v.Export; e != nil {
		f = append(f, [2]string{"Export file", fmt.Sprintf("%s %s (%d records, SHA-256 %s)", ok(e.Matches), e.File, e.Found.Records, e.Found.SHA256)})
	}
	_ = writeFields(w, f)
	verdictLine := "VALID: the server signed this receipt and it is unchanged"
	if v.Export != nil {
		verdictLine += "; the export file is the one it names"
	}
	if !v.Valid {
		verdictLine = "INVALID"
	}
	fmt.Fprintln(w, verdictLine)
}
