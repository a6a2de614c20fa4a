package limits_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// A Resolver is the store.Router's quota source.
var _ store.Quotas = (*limits.Resolver)(nil)

// fakeCatalog maps tenants to a tier and overrides.
type fakeCatalog map[tenant.ID]struct {
	tier string
	o    limits.Overrides
}

func (f fakeCatalog) TenantLimits(_ context.Context, id tenant.ID) (string, limits.Overrides, error) {
	e, ok := f[id]
	if !ok {
		return "", limits.Overrides{}, errors.New("no such tenant")
	}
	return e.tier, e.o, nil
}

func ptr[T any](v T) *T { return &v }

func TestDefaultsAreValid(t *testing.T) {
	for name, l := range limits.Defaults() {
		o := limits.Overrides{RequestsPerSecond: &l.RequestsPerSecond, Burst: &l.Burst, MaxConcurrent: &l.MaxConcurrent,
			MaxRecords: &l.MaxRecords, MaxBytes: &l.MaxBytes, MaxBodyBytes: &l.MaxBodyBytes, MaxPageSize: &l.MaxPageSize,
			Weight: &l.Weight, QueueDepth: &l.QueueDepth}
		if err := o.Validate(); err != nil || l.Tier != name {
			t.Errorf("tier %s: %v", name, err)
		}
		if l.MaxBodyBytes > 1<<20 {
			t.Errorf("tier %s: body %d above the server's 1 MiB cap", name, l.MaxBodyBytes)
		}
	}
	d := limits.Defaults()
	if d["free"].Weight != 1 || d["standard"].Weight != 2 || d["enterprise"].Weight != 4 {
		t.Errorf("weights = %d/%d/%d", d["free"].Weight, d["standard"].Weight, d["enterprise"].Weight)
	}
}

func TestResolve(t *testing.T) {
	acme := tenant.MustParse("acme")
	std := limits.Defaults()["standard"]
	free := limits.Defaults()["free"]
	file := &limits.FileConfig{
		Tiers:   map[string]limits.Overrides{"standard": {MaxRecords: ptr(int64(777)), Burst: ptr(3)}},
		Tenants: map[string]limits.Overrides{"acme": {Burst: ptr(9), MaxPageSize: ptr(11)}},
	}
	with := func(l limits.Limits, f func(*limits.Limits)) limits.Limits { f(&l); return l }
	cases := []struct {
		name string
		tier string
		o    limits.Overrides
		fc   *limits.FileConfig
		want limits.Limits
	}{
		{"tier defaults", "standard", limits.Overrides{}, nil, std},
		{"other tier", "free", limits.Overrides{}, nil, free},
		{"catalog override", "standard", limits.Overrides{MaxRecords: ptr(int64(5)), RequestsPerSecond: ptr(1.5)}, nil,
			with(std, func(l *limits.Limits) { l.MaxRecords, l.RequestsPerSecond = 5, 1.5 })},
		{"file tier adjusts defaults", "standard", limits.Overrides{}, &limits.FileConfig{Tiers: file.Tiers},
			with(std, func(l *limits.Limits) { l.MaxRecords, l.Burst = 777, 3 })},
		{"catalog beats file tier", "standard", limits.Overrides{MaxRecords: ptr(int64(5))}, &limits.FileConfig{Tiers: file.Tiers},
			with(std, func(l *limits.Limits) { l.MaxRecords, l.Burst = 5, 3 })},
		{"file tenant wins", "standard", limits.Overrides{Burst: ptr(100), MaxRecords: ptr(int64(5))}, file,
			with(std, func(l *limits.Limits) { l.MaxRecords, l.Burst, l.MaxPageSize = 5, 9, 11 })},
		{"file tier of another tier ignored", "free", limits.Overrides{}, &limits.FileConfig{Tiers: file.Tiers}, free},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := limits.Resolve(limits.Defaults(), c.tier, c.o, c.fc, acme)
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v\nwant %+v", got, err, c.want)
			}
		})
	}
	if _, err := limits.Resolve(limits.Defaults(), "platinum", limits.Overrides{}, nil, acme); !errors.Is(err, limits.ErrInvalid) {
		t.Fatalf("unknown tier: %v", err)
	}
}

func TestResolverUsesCatalogAndFile(t *testing.T) {
	acme, globex := tenant.MustParse("acme"), tenant.MustParse("globex")
	cat := fakeCatalog{
		acme:   {tier: "enterprise", o: limits.Overrides{Weight: ptr(7)}},
		globex: {tier: "free"},
	}
	path := filepath.Join(t.TempDir(), "limits.json")
	writeFile(t, path, `{"tenants": {"acme": {"weight": 8}}}`)
	f, err := limits.OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := limits.NewResolver(cat, f)
	if l, err := r.For(context.Background(), acme); err != nil || l.Weight != 8 || l.Tier != "enterprise" {
		t.Fatalf("acme = %+v %v", l, err)
	}
	if l, err := r.For(context.Background(), globex); err != nil || l != limits.Defaults()["free"] {
		t.Fatalf("globex = %+v %v", l, err)
	}
	if _, err := r.For(context.Background(), tenant.MustParse("nobody")); err == nil {
		t.Fatal("unknown tenant resolved")
	}
	if l, err := limits.NewResolver(cat, nil).For(context.Background(), acme); err != nil || l.Weight != 7 {
		t.Fatalf("without file: %+v %v", l, err)
	}
	free := limits.Defaults()["free"]
	if rec, b, err := r.StorageQuota(context.Background(), globex); err != nil || rec != free.MaxRecords || b != free.MaxBytes {
		t.Fatalf("globex storage quota = %d records, %d bytes, %v; want the free tier's", rec, b, err)
	}
	if _, _, err := r.StorageQuota(context.Background(), tenant.MustParse("nobody")); err == nil {
		t.Fatal("unknown tenant got a storage quota")
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFileReloadKeepsLastGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.json")
	writeFile(t, path, `{"tenants": {"acme": {"burst": 5}}}`)
	var logs bytes.Buffer
	f, err := limits.OpenFile(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	burst := func() int { return *f.Config().Tenants["acme"].Burst }
	if changed, err := f.Reload(); changed || err != nil || burst() != 5 {
		t.Fatalf("unchanged reload: %v %v", changed, err)
	}
	writeFile(t, path, `{"tenants": {"acme": {"burst": 6}}}`)
	if changed, err := f.Reload(); !changed || err != nil || burst() != 6 {
		t.Fatalf("reload: %v %v burst %d", changed, err, burst())
	}
	for _, bad := range []string{
		`{"tenants": {"acme": {"burst": 7}`,           // truncated
		`{"tenants": {"acme": {"burst": 0}}}`,         // out of range
		`{"tenants": {"acme": {"bursts": 7}}}`,        // unknown field
		`{"tiers": {"platinum": {"burst": 7}}}`,       // unknown tier
		`{"tenants": {"Not A Tenant": {"burst": 7}}}`, // invalid id
	} {
		writeFile(t, path, bad)
		if changed, err := f.Reload(); changed || !errors.Is(err, limits.ErrInvalid) || burst() != 6 {
			t.Fatalf("bad file %s: changed %v err %v burst %d", bad, changed, err, burst())
		}
	}
	if !strings.Contains(logs.String(), "keeping the last good version") {
		t.Fatalf("rejection not logged: %s", logs.String())
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Reload(); err == nil || burst() != 6 {
		t.Fatalf("missing file: %v", err)
	}
	writeFile(t, path, `{"tenants": {"acme": {"burst": 8}}}`)
	if changed, err := f.Reload(); !changed || err != nil || burst() != 8 {
		t.Fatalf("recovery: %v %v", changed, err)
	}
	if _, err := limits.OpenFile(filepath.Join(t.TempDir(), "none.json"), nil); err == nil {
		t.Fatal("OpenFile of a missing file succeeded")
	}
}

func TestParseOverrides(t *testing.T) {
	if o, err := limits.ParseOverrides([]byte(`{"max_records": 0, "max_page_size": 1000}`)); err != nil || *o.MaxRecords != 0 {
		t.Fatalf("valid: %+v %v", o, err)
	}
	for _, bad := range []string{`{"max_page_size": 1001}`, `{"requests_per_second": 0}`, `{"max_bytes": -1}`,
		`{"max_body_bytes": 0}`, `{"nope": 1}`, `[]`, `{"weight": 0}`, `{"queue_depth": -3}`, `{"max_concurrent": 0}`} {
		if _, err := limits.ParseOverrides([]byte(bad)); !errors.Is(err, limits.ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
