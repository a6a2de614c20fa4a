package sqlrebind

import "testing"

func TestQ(t *testing.T) {
	r := New("bulkhead_catalog", "tenants", "api_keys")
	got := r.Q(`SELECT id FROM tenants JOIN api_keys ON api_keys.tenant_id = tenants.id WHERE id = ? AND name = ? AND tenants_x = 1`)
	want := `SELECT id FROM bulkhead_catalog.tenants JOIN bulkhead_catalog.api_keys ON bulkhead_catalog.api_keys.tenant_id = bulkhead_catalog.tenants.id WHERE id = $1 AND name = $2 AND tenants_x = 1`
	if got != want {
		t.Fatalf("Q =\n%s\nwant\n%s", got, want)
	}
	if again := r.Q(`SELECT id FROM tenants JOIN api_keys ON api_keys.tenant_id = tenants.id WHERE id = ? AND name = ? AND tenants_x = 1`); again != want {
		t.Fatalf("cached Q = %s", again)
	}
}
