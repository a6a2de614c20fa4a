package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/export"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// envs are the stores the export runs on: SQLite always, PostgreSQL when
// BULKHEAD_TEST_POSTGRES is set (tenanttest.Postgres skips otherwise).
func envs(t *testing.T) map[string]func(*testing.T) *tenanttest.Env {
	return map[string]func(*testing.T) *tenanttest.Env{
		"sqlite":   func(t *testing.T) *tenanttest.Env { return tenanttest.New(t, tenanttest.Options{}) },
		"postgres": func(t *testing.T) *tenanttest.Env { return tenanttest.Postgres(t, tenanttest.Options{}) },
	}
}

// seed is what each tenant writes: the same collections and ids, data that
// names the tenant.
var seed = map[string][]string{
	"zeta":  {"b", "a", "c"},
	"alpha": {"x-2", "x-1", "Z", "x-10", "m.1", "m~2"},
	"mid_1": {"only"},
	"empty": {}, // a collection whose only record is deleted again
}

func put(t *testing.T, env *tenanttest.Env, ctx context.Context, owner string) {
	t.Helper()
	err := env.Router.Tx(ctx, func(tx *store.Tx) error {
		for c, ids := range seed {
			for _, id := range ids {
				data := fmt.Sprintf(`{"owner":%q,"id":%q,"html":"<b>&</b>"}`, owner, id)
				if _, _, err := tx.Put(ctx, c, id, []byte(data), store.IfMatch{}); err != nil {
					return err
				}
			}
		}
		if _, _, err := tx.Put(ctx, "empty", "gone", []byte(`{}`), store.IfMatch{}); err != nil {
			return err
		}
		return tx.Delete(ctx, "empty", "gone", store.IfMatch{})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func lines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	ls := strings.SplitAfter(string(b), "\n")
	return ls[:len(ls)-1] // after the last newline: ""
}

func run(t *testing.T, env *tenanttest.Env, ctx context.Context, opts export.Options) ([]string, export.Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := export.Write(ctx, env.Router, &buf, opts)
	if err != nil {
		t.Fatalf("export after %q: %v", opts.After, err)
	}
	if st.Bytes != int64(buf.Len()) {
		t.Errorf("Stats.Bytes = %d, wrote %d", st.Bytes, buf.Len())
	}
	return lines(buf.Bytes()), st
}

func TestExportIsEveryRecordOfTheTenantAsGetReturnsIt(t *testing.T) {
	for name, open := range envs(t) {
		t.Run(name, func(t *testing.T) {
			env := open(t)
			for _, mode := range env.Modes() {
				t.Run(string(mode), func(t *testing.T) {
					acme := env.Tenant(t, "acme-"+string(mode), mode)
					other := env.Tenant(t, "other-"+string(mode), mode)
					put(t, env, acme, "acme")
					put(t, env, other, "other")
					testExport(t, env, acme)
				})
			}
		})
	}
}

func testExport(t *testing.T, env *tenanttest.Env, ctx context.Context) {
	got, st := run(t, env, ctx, export.Options{PageSize: 2})
	want := 0
	for _, ids := range seed {
		want += len(ids)
	}
	if len(got) != want || st.Records != int64(want) {
		t.Fatalf("export has %d lines (stats %d), want %d:\n%s", len(got), st.Records, want, strings.Join(got, ""))
	}
	var prev export.Position
	for i, line := range got {
		var rec store.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not a record: %v\n%s", i, err, line)
		}
		// Exactly the bytes the record API answers for it: json.Marshal + "\n".
		err := env.Router.ReadTx(ctx, func(tx *store.Tx) error {
			cur, err := tx.Get(ctx, rec.Collection, rec.ID)
			if err != nil {
				return err
			}
			b, _ := json.Marshal(cur)
			if string(b)+"\n" != line {
				t.Errorf("line %d = %s, GET gives %s", i, line, b)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("line %d names %s/%s, which the tenant cannot read: %v", i, rec.Collection, rec.ID, err)
		}
		if !strings.Contains(line, `"owner":"acme"`) {
			t.Errorf("line %d is another tenant's record: %s", i, line)
		}
		p := export.Of(rec)
		if i > 0 && (p.Collection < prev.Collection || p.Collection == prev.Collection && p.ID <= prev.ID) {
			t.Errorf("line %d (%s) does not sort after line %d (%s)", i, p, i-1, prev)
		}
		prev = p
	}
	if st.Last != prev {
		t.Errorf("Stats.Last = %s, want the last line's %s", st.Last, prev)
	}

	t.Run("resuming after any line gives exactly the rest", func(t *testing.T) {
		for k, line := range got {
			var rec store.Record
			_ = json.Unmarshal([]byte(line), &rec)
			rest, _ := run(t, env, ctx, export.Options{After: export.Of(rec), PageSize: 3})
			if strings.Join(rest, "") != strings.Join(got[k+1:], "") {
				t.Fatalf("after %s: got %d lines, want the %d after it", export.Of(rec), len(rest), len(got)-k-1)
			}
		}
	})
	t.Run("resuming after a position that does not exist", func(t *testing.T) {
		for _, c := range []struct {
			after export.Position
			first string // the collection/id of the first line, "" for none
		}{
			{export.Position{Collection: "alpha", ID: "x-15"}, "alpha/x-2"},
			{export.Position{Collection: "beta", ID: "a"}, "empty"}, // no such collection: the next one (empty) is empty
			{export.Position{Collection: "mid_0", ID: "zzz"}, "mid_1/only"},
			{export.Position{Collection: "zzz", ID: "a"}, ""},
		} {
			rest, _ := run(t, env, ctx, export.Options{After: c.after})
			first := ""
			if len(rest) > 0 {
				var rec store.Record
				_ = json.Unmarshal([]byte(rest[0]), &rec)
				first = export.Of(rec).String()
			}
			if c.first == "empty" {
				c.first = "mid_1/only"
			}
			if first != c.first {
				t.Errorf("after %s the export starts at %q, want %q", c.after, first, c.first)
			}
		}
	})
}

func TestRecordsWrittenDuringAnExportAppearAtMostOnce(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	ctx := env.Tenant(t, "acme", store.Pooled)
	write := func(c, id string) {
		t.Helper()
		if err := env.Router.Tx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.Put(ctx, c, id, []byte(`{"v":1}`), store.IfMatch{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "c", "e", "g"} {
		write("notes", id)
	}
	pages := 0
	got, _ := run(t, env, ctx, export.Options{PageSize: 2, Page: func(st export.Stats) error {
		pages++
		if pages == 1 { // after a, c: one behind the position, one ahead, one changed ahead
			write("notes", "b")
			write("notes", "f")
			write("notes", "e")
			write("later", "x") // a collection created now is not exported
		}
		return nil
	}})
	var ids []string
	for _, l := range got {
		var rec store.Record
		_ = json.Unmarshal([]byte(l), &rec)
		ids = append(ids, rec.ID+fmt.Sprint(rec.Version))
	}
	if strings.Join(ids, " ") != "a1 c1 e2 f1 g1" {
		t.Fatalf("export = %v, want a1 c1 e2 f1 g1 (b written behind the position, later created after the start)", ids)
	}
}

func TestWriteStopsAtTheWritersError(t *testing.T) {
	env := tenanttest.New(t, tenanttest.Options{})
	ctx := env.Tenant(t, "acme", store.Pooled)
	put(t, env, ctx, "acme")
	boom := errors.New("client went away")
	st, err := export.Write(ctx, env.Router, failWriter{boom}, export.Options{PageSize: 2})
	if !errors.Is(err, boom) || st.Records != 0 {
		t.Fatalf("Write = %+v, %v; want the writer's error and no record counted", st, err)
	}
	if _, err := export.Write(ctx, env.Router, &bytes.Buffer{}, export.Options{PageSize: store.MaxLimit + 1}); !errors.Is(err, store.ErrInvalidLimit) {
		t.Fatalf("PageSize over store.MaxLimit: %v", err)
	}
	if _, err := export.Write(context.Background(), env.Router, &bytes.Buffer{}, export.Options{}); err == nil {
		t.Fatal("an export without a tenant in the context did not fail")
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestParsePosition(t *testing.T) {
	for _, s := range []string{"notes/a", "a/Z.~_-1", "c0_1/" + strings.Repeat("x", 128), ""} {
		p, err := export.ParsePosition(s)
		if err != nil || p.String() != s {
			t.Errorf("ParsePosition(%q) = %v, %v", s, p, err)
		}
	}
	for _, s := range []string{"notes", "/a", "notes/", "Notes/a", "notes/a/b", "notes/a b", "notes/" + strings.Repeat("x", 129), "n%2Fa", "../a"} {
		if _, err := export.ParsePosition(s); !errors.Is(err, export.ErrInvalidPosition) {
			t.Errorf("ParsePosition(%q) = %v, want ErrInvalidPosition", s, err)
		}
	}
}

func TestTallyCountsLinesBytesAndHash(t *testing.T) {
	for _, c := range []struct {
		in      string
		records int64
		partial bool
	}{{"", 0, false}, {"{}\n", 1, false}, {"{}\n{}\n", 2, false}, {"{}\n{", 1, true}} {
		s, err := export.Summarize(strings.NewReader(c.in))
		if err != nil {
			t.Fatal(err)
		}
		tl := export.NewTally()
		for i := range len(c.in) { // byte by byte: the same sums
			tl.Write([]byte{c.in[i]})
		}
		if s != tl.Summary() || s.Records != c.records || s.Partial != c.partial || s.Bytes != int64(len(c.in)) {
			t.Errorf("%q: Summarize %+v, Tally %+v", c.in, s, tl.Summary())
		}
	}
	a, _ := export.Summarize(strings.NewReader("{}\n"))
	b, _ := export.Summarize(strings.NewReader("{ }\n"))
	if a.SHA256 == b.SHA256 || len(a.SHA256) != 64 {
		t.Errorf("SHA-256 %q and %q", a.SHA256, b.SHA256)
	}
}
