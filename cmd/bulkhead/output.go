package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// printJSON writes a response body as indented JSON (the --json output);
// an empty body (204) prints nothing.
func printJSON(w io.Writer, raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("response is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// writeTable writes rows under header as aligned columns.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	writeRow(tw, header)
	for _, r := range rows {
		writeRow(tw, r)
	}
	return tw.Flush()
}

// writeFields writes one object as aligned "Label  value" lines.
func writeFields(w io.Writer, fields [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range fields {
		writeRow(tw, []string{f[0] + ":", f[1]})
	}
	return tw.Flush()
}

func writeRow(w io.Writer, cells []string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(clean, "\t"))
}

// cell makes a value safe for one table cell: control characters (tabs,
// newlines, terminal escapes) become '?', and an empty value becomes "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// formatTime prints a timestamp in UTC to the second; the zero time is "-".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// formatTimePtr is formatTime for optional timestamps.
func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

// tenantView is a tenant as the v1 API returns it; Usage, Limits and
// Overrides are set by show. Limits and Overrides stay raw JSON per field so
// that the table prints the server's numbers exactly and a merge of
// overrides keeps fields this build of the CLI does not know.
type tenantView struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Tier      string `json:"tier"`
	State     string `json:"state"`
	Placement struct {
		Mode  string `json:"mode"`
		Shard string `json:"shard"`
	} `json:"placement"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Usage     *struct {
		Collections int64 `json:"collections"`
		Records     int64 `json:"records"`
		Bytes       int64 `json:"bytes"`
	} `json:"usage,omitempty"`
	Limits    map[string]json.RawMessage `json:"limits,omitempty"`    // effective
	Overrides map[string]json.RawMessage `json:"overrides,omitempty"` // stored
	Retention map[string]string          `json:"retention,omitempty"` // collection → max age
	Events    *struct {
		Data bool `json:"data"`
	} `json:"events,omitempty"`
}

// tenantListHeader and row print tenants as a table.
var tenantListHeader = []string{"ID", "NAME", "TIER", "STATE", "ISOLATION", "SHARD", "CREATED"}

func (t tenantView) row() []string {
	return []string{t.ID, t.Name, t.Tier, t.State, t.Placement.Mode, t.Placement.Shard, formatTime(t.CreatedAt)}
}

// fields prints one tenant, with its usage when the response had it.
func (t tenantView) fields() [][2]string {
	f := [][2]string{
		{"ID", t.ID},
		{"Name", t.Name},
		{"Tier", t.Tier},
		{"State", t.State},
		{"Isolation", t.Placement.Mode},
		{"Shard", t.Placement.Shard},
	}
	if t.Usage != nil {
		f = append(f,
			[2]string{"Collections", fmt.Sprint(t.Usage.Collections)},
			[2]string{"Records", fmt.Sprint(t.Usage.Records)},
			[2]string{"Bytes", fmt.Sprint(t.Usage.Bytes)})
	}
	return append(f,
		[2]string{"Created", formatTime(t.CreatedAt)},
		[2]string{"Updated", formatTime(t.UpdatedAt)})
}

// keyView is a tenant API key as the v1 API returns it; Token is set only
// in the response that creates the key.
type keyView struct {
	ID         string     `json:"id"`
	Tenant     string     `json:"tenant"`
	Role       string     `json:"role"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	Token      string     `json:"token,omitempty"`
}

var keyListHeader = []string{"ID", "ROLE", "NAME", "CREATED", "LAST USED", "REVOKED"}

func (k keyView) row() []string {
	return []string{k.ID, k.Role, k.Name, formatTime(k.CreatedAt), formatTimePtr(k.LastUsedAt), formatTimePtr(k.RevokedAt)}
}

// page is one page of a v1 list. Items stay raw so that --json prints
// exactly what the server sent.
type page struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

// listing is what a list command prints of a page of items: a table of
// rows (one per item, decoded as T), or the empty message when there are
// none; --json prints the server's answer as it came.
type listing[T interface{ row() []string }] struct {
	what   string   // "list keys of tenant acme": the errors' prefix
	path   string   // the collection's API path
	header []string // the table's header
	empty  string   // printed when there are no items
}

// run fetches the page and prints it.
func (l listing[T]) run(cmd *cobra.Command, g *globals, cf *clientFlags) error {
	c, err := newClient(g, cf.token)
	if err != nil {
		return err
	}
	var p page
	raw, err := c.call(cmd.Context(), http.MethodGet, l.path, nil, nil, &p)
	if err != nil {
		return fmt.Errorf("%s: %w", l.what, err)
	}
	out := cmd.OutOrStdout()
	if cf.json {
		return printJSON(out, raw)
	}
	if len(p.Items) == 0 {
		_, err := fmt.Fprintln(out, l.empty)
		return err
	}
	rows := make([][]string, 0, len(p.Items))
	for _, it := range p.Items {
		var v T
		if err := json.Unmarshal(it, &v); err != nil {
			return fmt.Errorf("%s: decode an item: %w", l.what, err)
		}
		rows = append(rows, v.row())
	}
	return writeTable(out, l.header, rows)
}
