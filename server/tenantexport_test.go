package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/receipt"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// exported is an export response read whole, with its trailers.
type exported struct {
	resp
	trailer http.Header
	lines   []string
}

// export GETs path (an export route) with token.
func (e *env) export(path, token string) exported {
	e.t.Helper()
	r, err := http.NewRequest("GET", e.http.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	res, err := e.http.Client().Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read export: %v", err)
	}
	x := exported{resp: resp{status: res.StatusCode, header: res.Header, body: b}, trailer: res.Trailer}
	if res.StatusCode == 200 && len(b) > 0 {
		x.lines = strings.SplitAfter(string(b), "\n")
		x.lines = x.lines[:len(x.lines)-1]
	}
	return x
}

// seedExport writes the same collections and ids to each tenant, with data
// naming the tenant, and returns how many records each has.
func seedExport(e *env, tokens map[string]string) int {
	e.t.Helper()
	n := 0
	for owner, tok := range tokens {
		n = 0
		for _, c := range []string{"notes", "a_first", "tasks"} {
			for _, id := range []string{"n2", "N0", "x.y", "n10", "n1"} {
				body := fmt.Sprintf(`{"owner":%q,"c":%q,"id":%q}`, owner, c, id)
				want(e.t, e.req("PUT", "/v1/collections/"+c+"/records/"+id, tok, body), 201, "")
				n++
			}
		}
	}
	return n
}

func TestExport(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testExport(t, newEnv(t), mode) })
	}
}

func TestExportOnPostgres(t *testing.T) {
	for _, mode := range []string{"pooled", "schema", "database"} {
		t.Run(mode, func(t *testing.T) {
			opts, _ := pgOptions(t)
			testExport(t, newEnvIn(t, t.TempDir(), opts), mode)
		})
	}
}

func testExport(t *testing.T, e *env, mode string) {
	admin := e.tenantWithKey("acme", mode)
	other := e.tenantWithKey("beta", mode)
	total := seedExport(e, map[string]string{"acme": admin, "beta": other})
	x := e.export("/v1/export", admin)
	want(t, x.resp, 200, "")
	if ct := x.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}

	t.Run("every line is the record exactly as GET returns it, and only acme's", func(t *testing.T) {
		if len(x.lines) != total {
			t.Fatalf("%d lines, want %d:\n%s", len(x.lines), total, x.body)
		}
		prev := ""
		for i, line := range x.lines {
			var rec struct{ ID, Collection string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			g := e.req("GET", "/v1/collections/"+rec.Collection+"/records/"+rec.ID, admin, nil)
			want(t, g, 200, "")
			if string(g.body) != line {
				t.Errorf("line %d = %s, GET = %s", i, line, g.body)
			}
			if !strings.Contains(line, `"owner":"acme"`) {
				t.Errorf("line %d is another tenant's: %s", i, line)
			}
			pos := rec.Collection + "\x00" + rec.ID
			if pos <= prev {
				t.Errorf("line %d (%s/%s) is out of order", i, rec.Collection, rec.ID)
			}
			prev = pos
		}
		sum := sha256.Sum256(x.body)
		if x.trailer.Get("Bulkhead-Export-Records") != strconv.Itoa(total) || x.trailer.Get("Bulkhead-Export-Sha256") != hex.EncodeToString(sum[:]) {
			t.Errorf("trailers %v do not describe the body (%d records, %x)", x.trailer, total, sum)
		}
		// beta's export is beta's alone.
		for i, line := range e.export("/v1/export", other).lines {
			if !strings.Contains(line, `"owner":"beta"`) {
				t.Errorf("beta's line %d is another tenant's: %s", i, line)
			}
		}
	})

	t.Run("resuming after a line gives exactly the rest", func(t *testing.T) {
		for k, line := range x.lines {
			var rec struct{ ID, Collection string }
			_ = json.Unmarshal([]byte(line), &rec)
			rest := e.export("/v1/export?after="+url.QueryEscape(rec.Collection+"/"+rec.ID), admin)
			want(t, rest.resp, 200, "")
			if string(rest.body) != strings.Join(x.lines[k+1:], "") {
				t.Fatalf("after %s/%s: %d lines, want the %d after it", rec.Collection, rec.ID, len(rest.lines), len(x.lines)-k-1)
			}
		}
	})

	t.Run("a bad position is 400 invalid_position and streams nothing", func(t *testing.T) {
		before := len(e.tenantAudit(admin))
		for _, q := range []string{"after=notes", "after=Notes/n1", "after=notes/a/b", "after=notes/a%20b", "after=/n1",
			"after=notes/n1&after=notes/n2", "cursor=abc", "after=notes/" + strings.Repeat("x", 129), "after=%zz"} {
			r := e.req("GET", "/v1/export?"+q, admin, nil)
			want(t, r, 400, "invalid_position")
			r = e.req("GET", "/v1/admin/tenants/acme/export?"+q, e.op, nil)
			want(t, r, 400, "invalid_position")
		}
		if got := len(e.tenantAudit(admin)); got != before {
			t.Errorf("refused exports were recorded as exports: %d entries, had %d", got, before)
		}
	})

	t.Run("readers, writers and the operator get 403 on /v1/export", func(t *testing.T) {
		for _, role := range []string{"reader", "writer"} {
			tok, _ := e.createKey("acme", role)
			want(t, e.req("GET", "/v1/export", tok, nil), 403, "forbidden")
		}
		want(t, e.req("GET", "/v1/export", e.op, nil), 403, "forbidden")
		want(t, e.req("GET", "/v1/export", "", nil), 401, "unauthenticated")
		// A tenant key on the operator's route.
		want(t, e.req("GET", "/v1/admin/tenants/acme/export", admin, nil), 403, "forbidden")
	})

	t.Run("each export is audited on the tenant's chain", func(t *testing.T) {
		es := e.tenantAudit(admin)
		if !hasEntry(es, map[string]string{"action": "record.export", "resource": "tenant/acme", "decision": "allow"}) ||
			!hasEntry(es, map[string]string{"action": "record.export", "resource": "tenant/acme after a_first/N0", "decision": "allow"}) {
			t.Errorf("acme's audit lacks its exports: %v", es)
		}
		for _, en := range e.tenantAudit(other) {
			if strings.Contains(fmt.Sprint(en), "acme") {
				t.Errorf("beta's audit shows acme: %v", en)
			}
		}
	})

	t.Run("the operator exports the same records, audited on both chains", func(t *testing.T) {
		op := e.export("/v1/admin/tenants/acme/export", e.op)
		want(t, op.resp, 200, "")
		if string(op.body) != string(x.body) {
			t.Errorf("operator export differs from the tenant's:\n%s\n%s", op.body, x.body)
		}
		w := map[string]string{"action": "tenant.export", "resource": "tenant/acme", "decision": "allow", "principal": "operator:operator"}
		if !hasEntry(e.auditEntries("_control"), w) || !hasEntry(e.auditEntries("acme"), w) {
			t.Errorf("the operator's export is not on the control chain and acme's")
		}
		want(t, e.req("GET", "/v1/admin/tenants/nobody/export", e.op, nil), 404, "tenant_not_found")
		want(t, e.req("GET", "/v1/admin/tenants/Bad!/export", e.op, nil), 400, "invalid_tenant_id")
	})
}

func TestOffboardWithReceipt(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testOffboard(t, newEnv(t), mode) })
	}
}

func TestOffboardWithReceiptOnPostgres(t *testing.T) {
	opts, _ := pgOptions(t)
	testOffboard(t, newEnvIn(t, t.TempDir(), opts), "schema")
}

func testOffboard(t *testing.T, e *env, mode string) {
	admin := e.tenantWithKey("acme", mode)
	other := e.tenantWithKey("beta", mode)
	total := seedExport(e, map[string]string{"acme": admin, "beta": other})
	created := e.req("GET", "/v1/admin/tenants/acme", e.op, nil).json(t)["created_at"].(string)
	x := e.export("/v1/admin/tenants/acme/export", e.op)
	want(t, x.resp, 200, "")
	sum := sha256.Sum256(x.body)
	sha := hex.EncodeToString(sum[:])
	acmeKeys := e.srv.KeyNames(context.Background(), tenant.MustParse("acme"))
	if len(acmeKeys) != 2 {
		t.Fatalf("acme's keys: %v", acmeKeys)
	}

	t.Run("bad requests are 400 and change nothing", func(t *testing.T) {
		for _, body := range []any{map[string]any{}, map[string]any{"export_sha256": sha},
			map[string]any{"export_sha256": strings.ToUpper(sha), "export_records": total},
			map[string]any{"export_sha256": sha[:10], "export_records": total},
			map[string]any{"export_sha256": sha, "export_records": -1}} {
			want(t, e.req("POST", "/v1/admin/tenants/acme/offboard", e.op, body), 400, "invalid_export")
		}
		want(t, e.req("POST", "/v1/admin/tenants/acme/offboard", e.op, `{"export_sha256":"`+sha+`","export_records":1,"x":1}`), 400, "invalid_json")
		want(t, e.req("POST", "/v1/admin/tenants/acme/offboard", admin, map[string]any{"export_sha256": sha, "export_records": total}), 403, "forbidden")
		want(t, e.req("POST", "/v1/admin/tenants/nobody/offboard", e.op, map[string]any{"export_sha256": sha, "export_records": 0}), 404, "tenant_not_found")
	})

	t.Run("a truncated export is refused with 409 and nothing is deleted", func(t *testing.T) {
		r := e.req("POST", "/v1/admin/tenants/acme/offboard", e.op, map[string]any{"export_sha256": sha, "export_records": total - 1})
		want(t, r, 409, "export_mismatch")
		if again := e.export("/v1/export", admin); string(again.body) != string(x.body) {
			t.Fatal("acme's records changed after a refused offboarding")
		}
		if got := e.srv.KeyNames(context.Background(), tenant.MustParse("acme")); strings.Join(got, ",") != strings.Join(acmeKeys, ",") {
			t.Fatalf("acme's keys after a refused offboarding: %v, want %v", got, acmeKeys)
		}
	})

	var signed receipt.Signed
	t.Run("offboarding answers a receipt the server's key verifies", func(t *testing.T) {
		r := e.req("POST", "/v1/admin/tenants/acme/offboard", e.op, map[string]any{"export_sha256": sha, "export_records": total})
		want(t, r, 200, "")
		var err error
		if signed, err = receipt.Parse(r.body); err != nil {
			t.Fatalf("%v\n%s", err, r.body)
		}
		k := e.req("GET", "/v1/admin/receipt-key", e.op, nil)
		want(t, k, 200, "")
		pub, err := receipt.ParsePublicKey(k.json(t)["public_key"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if k.json(t)["key_id"] != signed.KeyID {
			t.Errorf("receipt key id %s, server's %v", signed.KeyID, k.json(t)["key_id"])
		}
		rc, err := receipt.Verify(pub, signed)
		if err != nil {
			t.Fatalf("the receipt does not verify with the server's key: %v", err)
		}
		if rc.Tenant != "acme" || rc.Records != int64(total) || rc.Export.Records != int64(total) || rc.Export.SHA256 != sha ||
			len(rc.Collections) != 3 || rc.Collections["notes"] != int64(total/3) || rc.DeletedAt.IsZero() ||
			rc.TenantCreatedAt == nil || rc.TenantCreatedAt.Format("2006-01-02T15:04:05.999999999Z07:00") != created ||
			strings.Join(rc.DestroyedKeys, ",") != strings.Join(acmeKeys, ",") {
			t.Errorf("receipt %s does not describe acme's offboarding (created %s)", signed.Receipt, created)
		}
		other, _, _ := ed25519.GenerateKey(nil)
		if _, err := receipt.Verify(other, signed); err == nil {
			t.Error("the receipt verifies with another key")
		}
	})

	t.Run("acme is gone, its keys with it; beta is untouched", func(t *testing.T) {
		want(t, e.req("GET", "/v1/admin/tenants/acme", e.op, nil), 404, "tenant_not_found")
		want(t, e.req("GET", "/v1/export", admin, nil), 401, "unauthenticated")
		if n := len(e.export("/v1/export", other).lines); n != total {
			t.Errorf("beta has %d records after acme's offboarding, want %d", n, total)
		}
		if got := e.srv.KeyNames(context.Background(), tenant.MustParse("acme")); len(got) != 0 {
			t.Errorf("acme's keys after offboarding: %v", got)
		}
		if !hasEntry(e.auditEntries("acme"), map[string]string{"action": "tenant.offboard", "decision": "allow"}) ||
			!hasEntry(e.auditEntries("_control"), map[string]string{"action": "tenant.delete", "resource": "tenant/acme", "decision": "allow"}) {
			t.Error("the offboarding is not audited")
		}
	})
}
