package server_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestRecordsContract(t *testing.T) {
	e := newEnv(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := e.on(t)
			id := "acme-" + mode[:2]
			tok := e.tenantWithKey(id, mode)
			const path = "/v1/collections/notes/records/n-1"

			t.Run("PUT creates with 201, Location and ETag", func(t *testing.T) {
				e := e.on(t)
				r := e.req("PUT", path, tok, `{"title":"first","n":1}`)
				want(t, r, 201, "")
				if got := r.header.Get("ETag"); got != `"1"` {
					t.Errorf("ETag %q, want \"1\"", got)
				}
				if got := r.header.Get("Location"); got != path {
					t.Errorf("Location %q, want %q", got, path)
				}
				m := r.json(t)
				if m["id"] != "n-1" || m["collection"] != "notes" || m["version"] != float64(1) {
					t.Errorf("record %s", r.body)
				}
				for _, k := range []string{"data", "created_at", "updated_at"} {
					if _, ok := m[k]; !ok {
						t.Errorf("record lacks %q: %s", k, r.body)
					}
				}
			})
			t.Run("PUT replaces with 200 and the next version", func(t *testing.T) {
				e := e.on(t)
				r := e.req("PUT", path, tok, `{"title":"second"}`)
				want(t, r, 200, "")
				if got := r.header.Get("ETag"); got != `"2"` {
					t.Errorf("ETag %q, want \"2\"", got)
				}
			})
			t.Run("If-Match with a stale version is 412 and changes nothing", func(t *testing.T) {
				e := e.on(t)
				want(t, e.req("PUT", path, tok, `{"title":"stale"}`, "If-Match", `"1"`), 412, "precondition_failed")
				want(t, e.req("DELETE", path, tok, nil, "If-Match", `"1"`), 412, "precondition_failed")
				r := e.req("GET", path, tok, nil)
				want(t, r, 200, "")
				if !strings.Contains(string(r.body), `"second"`) || r.header.Get("ETag") != `"2"` {
					t.Errorf("record changed: %s", r.body)
				}
			})
			t.Run("If-Match with the current version or * succeeds", func(t *testing.T) {
				e := e.on(t)
				want(t, e.req("PUT", path, tok, `{"title":"third"}`, "If-Match", `"2"`), 200, "")
				r := e.req("PUT", path, tok, `{"title":"fourth"}`, "If-Match", `*`)
				want(t, r, 200, "")
				if r.header.Get("ETag") != `"4"` {
					t.Errorf("ETag %q, want \"4\"", r.header.Get("ETag"))
				}
			})
			t.Run("If-Match * on a missing record is 412 and creates nothing", func(t *testing.T) {
				e := e.on(t)
				p := "/v1/collections/notes/records/ghost"
				want(t, e.req("PUT", p, tok, `{}`, "If-Match", `*`), 412, "precondition_failed")
				want(t, e.req("GET", p, tok, nil), 404, "not_found")
			})
			t.Run("GET returns the record with its ETag, HEAD too", func(t *testing.T) {
				e := e.on(t)
				r := e.req("GET", path, tok, nil)
				want(t, r, 200, "")
				var rec struct {
					Data    map[string]any
					Version int
				}
				if err := json.Unmarshal(r.body, &rec); err != nil {
					t.Fatal(err)
				}
				if rec.Data["title"] != "fourth" || rec.Version != 4 || r.header.Get("ETag") != `"4"` {
					t.Errorf("got %s (ETag %s)", r.body, r.header.Get("ETag"))
				}
				h := e.req("HEAD", path, tok, nil)
				want(t, h, 200, "")
				if h.header.Get("ETag") != `"4"` {
					t.Errorf("HEAD ETag %q", h.header.Get("ETag"))
				}
			})
			t.Run("POST creates with a server-made id", func(t *testing.T) {
				e := e.on(t)
				r := e.req("POST", "/v1/collections/notes/records", tok, `{"title":"posted"}`)
				want(t, r, 201, "")
				m := r.json(t)
				loc := r.header.Get("Location")
				if m["id"] == "" || loc != "/v1/collections/notes/records/"+m["id"].(string) || r.header.Get("ETag") != `"1"` {
					t.Fatalf("POST gave id %v, Location %q, ETag %q", m["id"], loc, r.header.Get("ETag"))
				}
				want(t, e.req("GET", loc, tok, nil), 200, "")
				want(t, e.req("DELETE", loc, tok, nil), 204, "")
			})
			t.Run("DELETE is 204, then 404", func(t *testing.T) {
				e := e.on(t)
				want(t, e.req("DELETE", path, tok, nil, "If-Match", `"4"`), 204, "")
				want(t, e.req("GET", path, tok, nil), 404, "not_found")
				want(t, e.req("DELETE", path, tok, nil), 404, "not_found")
			})
			t.Run("list pages in id order with filters", func(t *testing.T) {
				e := e.on(t)
				for i := 1; i <= 5; i++ {
					status := "open"
					if i%2 == 0 {
						status = "done"
					}
					body := fmt.Sprintf(`{"status":%q,"n":%d,"flag":%v}`, status, i, i == 3)
					want(t, e.req("PUT", fmt.Sprintf("/v1/collections/tasks/records/t%d", i), tok, body), 201, "")
				}
				var ids []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > 5 {
						t.Fatal("pagination does not end")
					}
					q := "?limit=2"
					if cursor != "" {
						q += "&cursor=" + url.QueryEscape(cursor)
					}
					r := e.req("GET", "/v1/collections/tasks/records"+q, tok, nil)
					want(t, r, 200, "")
					var page struct {
						Items      []struct{ ID string }
						NextCursor *string `json:"next_cursor"`
					}
					if err := json.Unmarshal(r.body, &page); err != nil {
						t.Fatal(err)
					}
					if page.NextCursor == nil {
						t.Fatalf("page lacks next_cursor: %s", r.body)
					}
					for _, it := range page.Items {
						ids = append(ids, it.ID)
					}
					if cursor = *page.NextCursor; cursor == "" {
						break
					}
				}
				if got := strings.Join(ids, ","); got != "t1,t2,t3,t4,t5" {
					t.Errorf("listed %s", got)
				}
				for q, wantIDs := range map[string]string{
					"status=eq.open":               "t1,t3,t5",
					"status=eq.done&n=eq.4":        "t4",
					"flag=eq.true":                 "t3",
					"n=eq.2.0":                     "t2",
					"status=eq.nothing":            "",
					"status=eq.open&limit=1000":    "t1,t3,t5",
					"missing_field=eq.open&n=eq.1": "",
				} {
					r := e.req("GET", "/v1/collections/tasks/records?"+q, tok, nil)
					want(t, r, 200, "")
					var page struct{ Items []struct{ ID string } }
					_ = json.Unmarshal(r.body, &page)
					var got []string
					for _, it := range page.Items {
						got = append(got, it.ID)
					}
					if strings.Join(got, ",") != wantIDs {
						t.Errorf("?%s listed %v, want %s", q, got, wantIDs)
					}
				}
			})
			t.Run("an empty collection lists as an empty array", func(t *testing.T) {
				e := e.on(t)
				r := e.req("GET", "/v1/collections/empty/records", tok, nil)
				want(t, r, 200, "")
				if !strings.Contains(string(r.body), `"items":[]`) || !strings.Contains(string(r.body), `"next_cursor":""`) {
					t.Errorf("got %s", r.body)
				}
			})
			t.Run("collections list with counts", func(t *testing.T) {
				e := e.on(t)
				if n := e.count(tok, "tasks"); n != 5 {
					t.Errorf("tasks has %d records, want 5", n)
				}
				if n := e.count(tok, "notes"); n != 0 {
					t.Errorf("notes has %d records, want 0", n)
				}
			})
			t.Run("a reader may read but not write", func(t *testing.T) {
				e := e.on(t)
				reader, _ := e.createKey(id, "reader")
				want(t, e.req("GET", "/v1/collections/tasks/records/t1", reader, nil), 200, "")
				want(t, e.req("GET", "/v1/collections/tasks/records", reader, nil), 200, "")
				want(t, e.req("GET", "/v1/collections", reader, nil), 200, "")
				want(t, e.req("PUT", "/v1/collections/tasks/records/t9", reader, `{}`), 403, "forbidden")
				want(t, e.req("PUT", "/v1/collections/tasks/records/t1", reader, `{"x":1}`), 403, "forbidden")
				want(t, e.req("POST", "/v1/collections/tasks/records", reader, `{}`), 403, "forbidden")
				want(t, e.req("DELETE", "/v1/collections/tasks/records/t1", reader, nil), 403, "forbidden")
				if n := e.count(tok, "tasks"); n != 5 {
					t.Errorf("tasks has %d records after refused writes, want 5", n)
				}
				r := e.req("GET", "/v1/collections/tasks/records/t1", tok, nil)
				if r.header.Get("ETag") != `"1"` {
					t.Errorf("t1 changed by a reader: %s", r.body)
				}
			})
			t.Run("a writer may write", func(t *testing.T) {
				e := e.on(t)
				writer, _ := e.createKey(id, "writer")
				want(t, e.req("PUT", "/v1/collections/tasks/records/t6", writer, `{}`), 201, "")
				want(t, e.req("DELETE", "/v1/collections/tasks/records/t6", writer, nil), 204, "")
			})
		})
	}
}
