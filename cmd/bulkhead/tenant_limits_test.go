package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
)

// limitsTable returns the rows of the limits table in a command's output,
// by limit name, each as [EFFECTIVE, OVERRIDE, USAGE]; it fails the test
// when there is no table.
func limitsTable(t *testing.T, out string) map[string][]string {
	t.Helper()
	_, table, ok := strings.Cut(out, "\nLIMIT ")
	if !ok {
		t.Fatalf("no limits table in:\n%s", out)
	}
	rows := tableRows("LIMIT " + table)
	if got := strings.Join(rows[0], " "); got != "LIMIT EFFECTIVE OVERRIDE USAGE" {
		t.Fatalf("limits header = %q", got)
	}
	m := map[string][]string{}
	for _, r := range rows[1:] {
		if len(r) != 4 {
			t.Fatalf("limits row %q has %d cells, want 4:\n%s", r, len(r), out)
		}
		m[r[0]] = r[1:]
	}
	return m
}

// wantLimit checks one row of a limits table.
func wantLimit(t *testing.T, table map[string][]string, name, effective, override, usage string) {
	t.Helper()
	want := []string{effective, override, usage}
	if got := table[name]; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s row = %q, want %q", name, got, want)
	}
}

// storedOverrides reads a tenant's stored overrides with GET, to check
// what a command changed (or did not).
func storedOverrides(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	r := ts.cli(t, "tenant", "show", id, "--json")
	mustSucceed(t, r)
	var v struct {
		Overrides json.RawMessage `json:"overrides"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("show --json: %v\n%s", err, r.stdout)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v.Overrides); err != nil {
		t.Fatalf("show --json overrides: %v\n%s", err, r.stdout)
	}
	return b.String()
}

func TestTenantShowPrintsLimitsAndUsage(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	key := createKey(t, ts, "acme", "writer")
	if code, body := ts.request(t, http.MethodPut, "/v1/collections/invoices/records/inv-1", key, `{"total":12}`); code != http.StatusCreated {
		t.Fatalf("PUT record: %d %s", code, body)
	}

	r := ts.cli(t, "tenant", "show", "acme", "--json")
	mustSucceed(t, r)
	var v struct {
		Usage struct {
			Bytes int64 `json:"bytes"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Usage.Bytes <= 0 {
		t.Fatalf("show --json usage.bytes = %d (err %v), want > 0:\n%s", v.Usage.Bytes, err, r.stdout)
	}
	bytesUsed := strconv.FormatInt(v.Usage.Bytes, 10)

	r = ts.cli(t, "tenant", "show", "acme")
	mustSucceed(t, r)
	if got := field(r.stdout, "Records"); got != "1" {
		t.Errorf("show printed Records %q, want 1\n%s", got, r.stdout)
	}
	if got := field(r.stdout, "Bytes"); got != bytesUsed {
		t.Errorf("show printed Bytes %q, want %s\n%s", got, bytesUsed, r.stdout)
	}
	table := limitsTable(t, r.stdout)
	if len(table) != len(limitFields) {
		t.Errorf("the table has %d limits, want %d (%s):\n%s", len(table), len(limitFields), limitNames(), r.stdout)
	}
	// The standard tier's defaults, no overrides, usage on the quotas only.
	wantLimit(t, table, "requests_per_second", "50", "-", "-")
	wantLimit(t, table, "burst", "100", "-", "-")
	wantLimit(t, table, "max_concurrent", "16", "-", "-")
	wantLimit(t, table, "max_records", "1000000", "-", "1")
	wantLimit(t, table, "max_bytes", strconv.Itoa(5<<30), "-", bytesUsed)
	wantLimit(t, table, "max_body_bytes", strconv.Itoa(1<<20), "-", "-")
	wantLimit(t, table, "max_page_size", "1000", "-", "-")
	wantLimit(t, table, "weight", "2", "-", "-")
	wantLimit(t, table, "queue_depth", "32", "-", "-")

	t.Run("limits without flags prints the same table", func(t *testing.T) {
		l := ts.cli(t, "tenant", "limits", "acme")
		mustSucceed(t, l)
		if got := field(l.stdout, "Tier"); got != "standard" {
			t.Errorf("limits printed Tier %q, want standard", got)
		}
		_, showTable, _ := strings.Cut(r.stdout, "\nLIMIT ")
		_, limitsTable, _ := strings.Cut(l.stdout, "\nLIMIT ")
		if showTable != limitsTable {
			t.Errorf("the tables differ:\nshow:\n%s\nlimits:\n%s", r.stdout, l.stdout)
		}
	})
}

func TestTenantLimitsChange(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))

	t.Run("--set stores overrides and show reflects them", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--set", "requests_per_second=200", "--set", "max_records=5000")
		mustSucceed(t, r)
		table := limitsTable(t, r.stdout)
		wantLimit(t, table, "requests_per_second", "200", "200", "-")
		wantLimit(t, table, "max_records", "5000", "5000", "0")
		wantLimit(t, table, "burst", "100", "-", "-")

		r = ts.cli(t, "tenant", "show", "acme")
		mustSucceed(t, r)
		table = limitsTable(t, r.stdout)
		wantLimit(t, table, "requests_per_second", "200", "200", "-")
		wantLimit(t, table, "max_records", "5000", "5000", "0")
		if got := storedOverrides(t, ts, "acme"); got != `{"requests_per_second":200,"max_records":5000}` {
			t.Errorf("stored overrides = %s", got)
		}
	})

	t.Run("--unset removes one override and keeps the others", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--unset", "max_records")
		mustSucceed(t, r)
		table := limitsTable(t, r.stdout)
		wantLimit(t, table, "max_records", "1000000", "-", "0")
		wantLimit(t, table, "requests_per_second", "200", "200", "-")
		if got := storedOverrides(t, ts, "acme"); got != `{"requests_per_second":200}` {
			t.Errorf("stored overrides = %s", got)
		}
	})

	t.Run("--tier changes the defaults under the overrides", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--tier", "enterprise")
		mustSucceed(t, r)
		if got := field(r.stdout, "Tier"); got != "enterprise" {
			t.Errorf("limits printed Tier %q, want enterprise", got)
		}
		table := limitsTable(t, r.stdout)
		wantLimit(t, table, "burst", "1000", "-", "-")
		wantLimit(t, table, "max_records", "100000000", "-", "0")
		wantLimit(t, table, "requests_per_second", "200", "200", "-")
		if got := field(ts.cli(t, "tenant", "show", "acme").stdout, "Tier"); got != "enterprise" {
			t.Errorf("show printed Tier %q after --tier enterprise", got)
		}
	})

	t.Run("a quota of 0 is none", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--set", "max_bytes=none", "--set", "max_records=0")
		mustSucceed(t, r)
		table := limitsTable(t, r.stdout)
		wantLimit(t, table, "max_bytes", "none", "none", "0")
		wantLimit(t, table, "max_records", "none", "none", "0")
	})

	t.Run("--json prints the server's tenant JSON", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--set", "burst=300", "--json")
		mustSucceed(t, r)
		var v struct {
			ID     string `json:"id"`
			Tier   string `json:"tier"`
			Limits struct {
				Burst             int     `json:"burst"`
				RequestsPerSecond float64 `json:"requests_per_second"`
			} `json:"limits"`
			Overrides map[string]float64 `json:"overrides"`
			Usage     *struct{}          `json:"usage"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
		}
		if v.ID != "acme" || v.Tier != "enterprise" || v.Limits.Burst != 300 || v.Limits.RequestsPerSecond != 200 ||
			v.Overrides["burst"] != 300 || v.Usage == nil {
			t.Errorf("--json = %+v\n%s", v, r.stdout)
		}

		r = ts.cli(t, "tenant", "limits", "acme", "--json")
		mustSucceed(t, r)
		if !json.Valid([]byte(r.stdout)) || !strings.Contains(r.stdout, `"overrides"`) {
			t.Errorf("limits --json without changes:\n%s", r.stdout)
		}
	})

	t.Run("--clear removes every override", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--clear")
		mustSucceed(t, r)
		table := limitsTable(t, r.stdout)
		for name, row := range table {
			if row[1] != "-" {
				t.Errorf("%s still has override %q after --clear", name, row[1])
			}
		}
		wantLimit(t, table, "requests_per_second", "500", "-", "-")
		if got := storedOverrides(t, ts, "acme"); got != `{}` {
			t.Errorf("stored overrides after --clear = %s, want {}", got)
		}
	})

	t.Run("--clear with --set replaces every override", func(t *testing.T) {
		mustSucceed(t, ts.cli(t, "tenant", "limits", "acme", "--set", "weight=3", "--set", "burst=7"))
		mustSucceed(t, ts.cli(t, "tenant", "limits", "acme", "--clear", "--set", "queue_depth=9"))
		if got := storedOverrides(t, ts, "acme"); got != `{"queue_depth":9}` {
			t.Errorf("stored overrides = %s, want only queue_depth", got)
		}
	})
}

func TestTenantLimitsRefusesMistakes(t *testing.T) {
	ts := startServer(t)
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	mustSucceed(t, ts.cli(t, "tenant", "limits", "acme", "--set", "burst=150"))
	before := storedOverrides(t, ts, "acme")

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"an unknown name lists the valid ones", []string{"--set", "speed=5"},
			[]string{`unknown limit "speed"`, limitNames()}},
		{"a near miss is named", []string{"--unset", "max-records"}, []string{"did you mean max_records?"}},
		{"the tier is not a limit", []string{"--set", "tier=free"}, []string{"tier is not a limit", "change it with --tier"}},
		{"an integer limit refuses a fraction", []string{"--set", "burst=1.5"}, []string{"burst must be a whole number", `"1.5"`}},
		{"an integer limit refuses a word", []string{"--set", "max_records=lots"}, []string{"max_records must be a whole number, or none"}},
		{"requests_per_second refuses a word", []string{"--set", "requests_per_second=fast"}, []string{"requests_per_second must be a number"}},
		{"requests_per_second refuses infinity", []string{"--set", "requests_per_second=Inf"}, []string{"requests_per_second must be a number"}},
		{"an integer out of range is refused", []string{"--set", "max_bytes=99999999999999999999"}, []string{"out of range"}},
		{"a value needs a name", []string{"--set", "burst"}, []string{"want NAME=VALUE"}},
		{"set and unset of one name conflict", []string{"--set", "burst=5", "--unset", "burst"},
			[]string{"burst is in both --set and --unset"}},
		{"a name set twice is refused", []string{"--set", "burst=5", "--set", "burst=6"}, []string{"names burst twice"}},
		{"--clear with --unset is refused", []string{"--clear", "--unset", "burst"}, []string{"--unset has nothing to remove with --clear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"tenant", "limits", "acme"}, tc.args...)
			r := ts.cli(t, args...)
			mustFail(t, r, 2, append(tc.want, "--help")...)
			if r.stdout != "" {
				t.Errorf("a refused command printed to stdout: %q", r.stdout)
			}
			if got := storedOverrides(t, ts, "acme"); got != before {
				t.Errorf("overrides changed from %s to %s", before, got)
			}
			// Nothing is sent: with no server at all, the error is the same.
			r = runCLI(t, nil, append(args, "--addr", closedAddr(t), "--token", ts.token)...)
			mustFail(t, r, 2, tc.want...)
		})
	}

	t.Run("the server's range check comes back readable", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--set", "burst=0", "--set", "weight=5")
		mustFail(t, r, 1, "change limits of tenant acme", "burst must be at least 1", "invalid_limits", "HTTP 400")
		if got := storedOverrides(t, ts, "acme"); got != before {
			t.Errorf("overrides changed from %s to %s", before, got)
		}
	})

	t.Run("an unknown tier is refused by the server", func(t *testing.T) {
		r := ts.cli(t, "tenant", "limits", "acme", "--tier", "gold", "--set", "weight=5")
		mustFail(t, r, 1, "invalid_tier", "free, standard or enterprise")
		if got := storedOverrides(t, ts, "acme"); got != before {
			t.Errorf("overrides changed from %s to %s", before, got)
		}
		if got := field(ts.cli(t, "tenant", "show", "acme").stdout, "Tier"); got != "standard" {
			t.Errorf("tier = %q after a refused change", got)
		}
	})

	t.Run("a missing tenant fails with a hint", func(t *testing.T) {
		mustFail(t, ts.cli(t, "tenant", "limits", "nobody", "--set", "burst=5"), 1, "tenant_not_found", "bulkhead tenant list")
		mustFail(t, ts.cli(t, "tenant", "limits", "nobody"), 1, "tenant_not_found")
	})

	t.Run("the environment never changes limits", func(t *testing.T) {
		env := map[string]string{
			"BULKHEAD_ADDR": ts.url, "BULKHEAD_TOKEN": ts.token,
			"BULKHEAD_TIER": "free", "BULKHEAD_SET": "burst=1", "BULKHEAD_UNSET": "burst", "BULKHEAD_CLEAR": "true",
		}
		r := runCLI(t, env, "tenant", "limits", "acme")
		mustSucceed(t, r)
		if got := field(r.stdout, "Tier"); got != "standard" {
			t.Errorf("BULKHEAD_TIER changed the tier to %q", got)
		}
		if got := storedOverrides(t, ts, "acme"); got != before {
			t.Errorf("the environment changed overrides from %s to %s", before, got)
		}
		h := runCLI(t, nil, "tenant", "limits", "--help")
		mustSucceed(t, h)
		for _, v := range []string{"BULKHEAD_TIER", "BULKHEAD_SET", "BULKHEAD_UNSET", "BULKHEAD_CLEAR"} {
			if strings.Contains(h.stdout, v) {
				t.Errorf("limits --help claims %s", v)
			}
		}
		if !strings.Contains(h.stdout, "last write wins") {
			t.Errorf("limits --help does not warn that concurrent changes overwrite each other:\n%s", h.stdout)
		}
	})
}

func TestTenantLimitsNotesTheLimitsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.json")
	if err := os.WriteFile(path, []byte(`{"tenants":{"acme":{"burst":40}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServerWith(t, server.Options{LimitsFile: path})
	mustSucceed(t, ts.cli(t, "tenant", "create", "acme"))
	r := ts.cli(t, "tenant", "limits", "acme", "--set", "burst=70", "--set", "weight=3")
	mustSucceed(t, r)
	table := limitsTable(t, r.stdout)
	wantLimit(t, table, "burst", "40", "70", "-")
	wantLimit(t, table, "weight", "3", "3", "-")
	if !strings.Contains(r.stderr, "limits file sets burst to 40, over the override 70") || strings.Contains(r.stderr, "weight") {
		t.Errorf("stderr does not note (only) that the file wins for burst:\n%s", r.stderr)
	}
}

func TestLimitFieldsFollowTheAPI(t *testing.T) {
	if got, want := limitNames(), "requests_per_second, burst, max_concurrent, max_records, max_bytes, max_body_bytes, max_page_size, weight, queue_depth"; got != want {
		t.Errorf("limit names = %s\nwant          %s", got, want)
	}
	for _, f := range limitFields {
		if f.float != (f.name == "requests_per_second") || (!f.float && f.bits < 32) {
			t.Errorf("%s: float %v, bits %d", f.name, f.float, f.bits)
		}
	}
}
