package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/limits"
)

// limitField is one limit an operator can override, named as the API names
// it.
type limitField struct {
	name  string // the JSON field name, e.g. requests_per_second
	float bool   // a number with a fraction; every other limit is an integer
	bits  int    // the integer's size, so that a value the server cannot hold is refused here
	quota bool   // a storage quota: 0 means no quota, and usage counts against it
}

// limitFields are the overridable limits in the order of limits.Overrides.
// They are read from its JSON tags, so that the names and types the CLI
// accepts cannot drift from the ones the server decodes.
var limitFields = overridableLimits()

func overridableLimits() []limitField {
	typ := reflect.TypeFor[limits.Overrides]()
	fields := make([]limitField, 0, typ.NumField())
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		lf := limitField{name: name, quota: name == "max_records" || name == "max_bytes"}
		switch ft.Kind() {
		case reflect.Float32, reflect.Float64:
			lf.float = true
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			lf.bits = ft.Bits()
		default:
			// A new kind of limit needs its own parsing here; every test run
			// reaches this line, so it cannot ship unnoticed.
			panic(fmt.Sprintf("limits.Overrides.%s: the CLI cannot parse a %s", f.Name, ft))
		}
		fields = append(fields, lf)
	}
	return fields
}

// limitNames lists the limits for error messages and help.
func limitNames() string {
	names := make([]string, len(limitFields))
	for i, f := range limitFields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// wrapList breaks a comma-separated list into lines of at most width
// characters, the first of which starts at column start, for help text.
func wrapList(list string, start, width int) string {
	var b strings.Builder
	col := start
	for i, item := range strings.Split(list, ", ") {
		if i > 0 {
			b.WriteByte(',')
			col++
			if col+1+len(item)+1 > width {
				b.WriteByte('\n')
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(item)
		col += len(item)
	}
	return b.String()
}

// lookupLimit finds a limit by name, with an error that says what to type
// instead.
func lookupLimit(name string) (limitField, error) {
	for _, f := range limitFields {
		if f.name == name {
			return f, nil
		}
	}
	if name == "tier" {
		return limitField{}, errors.New("tier is not a limit: change it with --tier")
	}
	guess := strings.ToLower(strings.ReplaceAll(name, "-", "_"))
	for _, f := range limitFields {
		if f.name == guess {
			return limitField{}, fmt.Errorf("unknown limit %q (did you mean %s?)", name, f.name)
		}
	}
	return limitField{}, fmt.Errorf("unknown limit %q; the limits are %s", name, limitNames())
}

// parse turns a --set value into the JSON number the API expects. It
// checks the type only: the ranges are the server's to enforce, the one
// place that also knows the limits file.
func (f limitField) parse(v string) (json.RawMessage, error) {
	if f.quota && v == "none" {
		return json.RawMessage("0"), nil
	}
	if f.float {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%s must be a number, e.g. %s=200 or %s=0.5; got %q", f.name, f.name, f.name, v)
		}
		return json.Marshal(x)
	}
	n, err := strconv.ParseInt(v, 10, f.bits)
	if errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("%s=%s is out of range", f.name, v)
	}
	if err != nil {
		hint := ""
		if f.quota {
			hint = ", or none for no quota"
		}
		return nil, fmt.Errorf("%s must be a whole number%s; got %q", f.name, hint, v)
	}
	return json.RawMessage(strconv.FormatInt(n, 10)), nil
}

// limitEdit is a change to a tenant's stored overrides, checked in full
// before anything is sent.
type limitEdit struct {
	clear bool                       // start from no overrides instead of the stored ones
	unset []string                   // overrides to remove
	set   map[string]json.RawMessage // overrides to add or replace
}

// parseLimitEdit checks the --set, --unset and --clear flags: names must be
// limits, values of the limit's type, and no name may be both set and unset
// or set twice, since which one wins would be a guess.
func parseLimitEdit(set, unset []string, clear bool) (limitEdit, error) {
	e := limitEdit{clear: clear, set: map[string]json.RawMessage{}}
	if clear && len(unset) > 0 {
		return e, errors.New("--unset has nothing to remove with --clear, which removes every override; use one of them")
	}
	for _, name := range unset {
		f, err := lookupLimit(strings.TrimSpace(name))
		if err != nil {
			return e, fmt.Errorf("--unset %s: %w", name, err)
		}
		e.unset = append(e.unset, f.name)
	}
	for _, kv := range set {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return e, fmt.Errorf("--set %q: want NAME=VALUE, e.g. --set requests_per_second=200", kv)
		}
		f, err := lookupLimit(strings.TrimSpace(name))
		if err != nil {
			return e, fmt.Errorf("--set %s: %w", kv, err)
		}
		if _, dup := e.set[f.name]; dup {
			return e, fmt.Errorf("--set names %s twice; give it once", f.name)
		}
		if slices.Contains(e.unset, f.name) {
			return e, fmt.Errorf("%s is in both --set and --unset; keep one of them", f.name)
		}
		if e.set[f.name], err = f.parse(strings.TrimSpace(value)); err != nil {
			return e, fmt.Errorf("--set %s: %w", kv, err)
		}
	}
	return e, nil
}

// changes reports whether the edit writes the overrides at all.
func (e limitEdit) changes() bool { return e.clear || len(e.unset) > 0 || len(e.set) > 0 }

// apply returns the overrides to store: stored (or none with --clear)
// without the unset names and with the set ones. Stored fields this CLI
// does not know are kept, so that an older CLI does not drop them. The
// result is never nil: {"limits": null} would read as "no change".
func (e limitEdit) apply(stored map[string]json.RawMessage) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	if !e.clear {
		maps.Copy(out, stored)
	}
	for _, k := range e.unset {
		delete(out, k)
	}
	for k, v := range e.set {
		out[k] = v
	}
	return out
}

func newTenantLimitsCommand(g *globals, cf *clientFlags) *cobra.Command {
	var tier string
	var set, unset []string
	var clear bool
	cmd := &cobra.Command{
		Use:   "limits ID",
		Short: "Show or change a tenant's tier and limit overrides",
		Long: `Show or change a tenant's limits. With no flags it prints them: for each limit
its effective value (the override stored for the tenant, else the tier's
default; the server's limits file, where it names the limit, wins over both),
the override (- if none), and the usage a quota counts. A quota (max_records,
max_bytes) of 0 is shown as none: no quota.

--set NAME=VALUE and --unset NAME edit the stored overrides: the command reads
them, removes the --unset names, sets the --set ones and writes the whole set
back; --clear starts from no overrides instead. --tier changes the tier, whose
defaults apply to every limit without an override. Names and values are
checked before anything is sent; ranges are checked by the server, which
changes nothing when it refuses. Changes apply from the next request.

Two operators changing the same tenant's limits at the same time can
overwrite each other's changes: the last write wins. Check the limits printed
after a change.

The limits: ` + wrapList(limitNames(), len("The limits: "), 76) + `.
requests_per_second takes a number, the others whole numbers; max_records and
max_bytes also take none (0, no quota).`,
		Example: `  bulkhead tenant limits acme
  bulkhead tenant limits acme --set requests_per_second=200 --set max_records=5000
  bulkhead tenant limits acme --unset max_records
  bulkhead tenant limits acme --tier enterprise --clear`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			edit, err := parseLimitEdit(set, unset, clear)
			if err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: err}
			}
			retier := cmd.Flags().Changed("tier")
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			changed := retier || edit.changes()
			if changed {
				if err := updateLimits(ctx, c, id, retier, tier, edit); err != nil {
					return fmt.Errorf("change limits of tenant %s: %w", id, err)
				}
			}
			// Read back rather than print the PATCH response: it has no usage,
			// and none of the limits when only the tier changed.
			var t tenantView
			raw, err := c.call(ctx, http.MethodGet, tenantPath(id), nil, nil, &t)
			if err != nil && changed {
				return fmt.Errorf("tenant %s's limits were changed, but reading them back failed: %w (see them with `bulkhead tenant limits %s`)",
					id, err, cell(id))
			}
			if err != nil {
				return fmt.Errorf("show limits of tenant %s: %w", id, err)
			}
			out := cmd.OutOrStdout()
			if cf.json {
				return printJSON(out, raw)
			}
			if err := writeFields(out, [][2]string{{"ID", t.ID}, {"Tier", t.Tier}}); err != nil {
				return err
			}
			if err := writeLimitsTable(out, t); err != nil {
				return err
			}
			noteFileWins(cmd.ErrOrStderr(), t)
			return nil
		},
	}
	cmd.Flags().StringVar(&tier, "tier", "", "change the `TIER`: free, standard or enterprise")
	cmd.Flags().StringArrayVar(&set, "set", nil, "set an override, `NAME=VALUE` (repeatable)")
	cmd.Flags().StringArrayVar(&unset, "unset", nil, "remove the override of `NAME` (repeatable): the limit falls back to the tier's default")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove every override before applying --set")
	// A variable left in the environment must not turn a look-up into a
	// change, least of all BULKHEAD_TIER, meant for `tenant create --tier`.
	markNoEnv(cmd, "tier", "set", "unset", "clear")
	return cmd
}

// updateLimits sends one PATCH: the tier when retier, and the edited
// overrides when the edit changes them. The server replaces the stored
// overrides as a whole, so the edit starts from the stored ones (read just
// before) unless --clear; a change by someone else in between is lost.
func updateLimits(ctx context.Context, c *client, id string, retier bool, tier string, edit limitEdit) error {
	body := map[string]any{}
	if retier {
		body["tier"] = tier
	}
	if edit.changes() {
		var stored map[string]json.RawMessage
		if !edit.clear {
			var t tenantView
			if _, err := c.call(ctx, http.MethodGet, tenantPath(id), nil, nil, &t); err != nil {
				return err
			}
			stored = t.Overrides
		}
		body["limits"] = edit.apply(stored)
	}
	_, err := c.call(ctx, http.MethodPatch, tenantPath(id), nil, body, nil)
	return err
}

var limitsHeader = []string{"LIMIT", "EFFECTIVE", "OVERRIDE", "USAGE"}

// writeLimitsTable writes, after a blank line, one row per limit: its
// effective value, its override and the usage a quota counts. A tenant
// without limits in its view (a list item, or one still provisioning)
// prints nothing.
func writeLimitsTable(w io.Writer, t tenantView) error {
	if t.Limits == nil && t.Overrides == nil {
		return nil
	}
	var rows [][]string
	known := map[string]bool{"tier": true} // in the effective limits, but not a limit
	for _, f := range limitFields {
		known[f.name] = true
		usage := ""
		if f.quota && t.Usage != nil {
			usage = strconv.FormatInt(t.Usage.Records, 10)
			if f.name == "max_bytes" {
				usage = strconv.FormatInt(t.Usage.Bytes, 10)
			}
		}
		rows = append(rows, []string{f.name, limitValue(t.Limits[f.name], f.quota), limitValue(t.Overrides[f.name], f.quota), usage})
	}
	// Limits of a newer server still show, after the known ones.
	var extra []string
	for _, m := range []map[string]json.RawMessage{t.Limits, t.Overrides} {
		for k := range m {
			if !known[k] {
				known[k] = true
				extra = append(extra, k)
			}
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		rows = append(rows, []string{k, limitValue(t.Limits[k], false), limitValue(t.Overrides[k], false), ""})
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	return writeTable(w, limitsHeader, rows)
}

// limitValue prints a limit as the server sent it; a quota of 0 is "none",
// and a missing value is empty (printed as "-").
func limitValue(raw json.RawMessage, quota bool) string {
	s := string(bytes.TrimSpace(raw))
	if s == "null" {
		return ""
	}
	if x, err := strconv.ParseFloat(s, 64); err == nil && quota && x == 0 {
		return "none"
	}
	return s
}

// noteFileWins tells, on stderr, which overrides the server's limits file
// replaces: the one reason an effective value differs from its override,
// and one that a change with --set cannot fix.
func noteFileWins(w io.Writer, t tenantView) {
	for _, f := range limitFields {
		eff, err1 := strconv.ParseFloat(string(bytes.TrimSpace(t.Limits[f.name])), 64)
		ovr, err2 := strconv.ParseFloat(string(bytes.TrimSpace(t.Overrides[f.name])), 64)
		if err1 == nil && err2 == nil && eff != ovr {
			fmt.Fprintf(w, "Note: the server's limits file sets %s to %s, over the override %s; change it in that file.\n",
				f.name, limitValue(t.Limits[f.name], f.quota), limitValue(t.Overrides[f.name], f.quota))
		}
	}
}
