package server_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/server"
)

// TestEventDataIsSealedInPostgres: on PostgreSQL, in every mode, the data
// that events carry is stored sealed: the rows of every tenant_events
// table in pg_dump's output of every database hold no needle, and open
// when read through the router. With encryption off (the control) the
// same rows hold the needles.
func TestEventDataIsSealedInPostgres(t *testing.T) {
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Skip("pg_dump is not installed")
	}
	for _, encrypted := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			opts, envs := pgOptions(t)
			opts.DisableEncryption = !encrypted
			e := newEnvIn(t, t.TempDir(), opts)
			var ids []string
			for _, mode := range []string{"pooled", "schema", "database"} {
				id := "vault-" + mode[:2]
				ids = append(ids, id)
				tok := e.tenantWithKey(id, mode)
				want(t, e.req("PATCH", "/v1/admin/tenants/"+id, e.op, `{"events": {"data": true}}`), 200, "")
				writeNeedles(e, tok, id)
			}
			var rows strings.Builder
			for _, dump := range dumpAll(t, envs[server.MainShard]) {
				rows.WriteString(copyRows(dump, ".tenant_events "))
			}
			for _, id := range ids {
				if !strings.Contains(rows.String(), visibleID) || !strings.Contains(rows.String(), id) {
					t.Fatalf("the dumps' event rows lack %s's record ids: the scan missed the events", id)
				}
				for _, n := range needles(id) {
					if got := strings.Contains(rows.String(), n); got == encrypted {
						t.Errorf("encrypted=%v: needle %q in the stored events = %v", encrypted, n, got)
					}
				}
				opened := 0
				for _, ev := range e.eventsOf(id, 0) {
					if strings.Contains(string(ev.Data), "zq-needle-value-8812-"+id) {
						opened++
					}
				}
				if opened < 12 {
					t.Errorf("%s: %d events read back with their data in the clear, want at least 12", id, opened)
				}
			}
		})
	}
}

// copyRows returns the data lines of the COPY blocks of tables whose
// qualified name ends with suffix in a pg_dump output.
func copyRows(dump, suffix string) string {
	var b strings.Builder
	in := false
	for line := range strings.Lines(dump) {
		switch {
		case strings.HasPrefix(line, "COPY ") && strings.Contains(line, suffix):
			in = true
		case in && strings.HasPrefix(line, `\.`):
			in = false
		case in:
			b.WriteString(line)
		}
	}
	return b.String()
}
