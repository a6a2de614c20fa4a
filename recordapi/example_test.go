package recordapi_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/recordapi"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/sqlite"
)

// The record API in a team's own mux, behind a gate that takes the
// catalog's API keys: each key reaches its tenant's records and no one
// else's.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "recordapi-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	backend, err := sqlite.Open(dir, sqlite.Options{})
	if err != nil {
		log.Fatal(err)
	}
	cat, err := catalog.Open(filepath.Join(dir, "control.db"), catalog.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()
	cursorKey := make([]byte, 32) // authenticates list cursors; keep it secret and stable
	_, _ = rand.Read(cursorKey)
	f, err := fleet.New(fleet.Config{Catalog: cat, Backends: map[string]store.Backend{"local": backend},
		Router: store.Config{CursorKey: cursorKey}})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	for _, id := range []string{"acme", "globex"} {
		t, err := f.Create(ctx, fleet.Spec{ID: id})
		if err != nil {
			log.Fatal(err)
		}
		if _, keys[id], err = cat.CreateKey(ctx, t.ID, catalog.RoleWriter, "example"); err != nil {
			log.Fatal(err)
		}
	}

	gate, err := ingress.New(ingress.Config{Authenticator: catalogauth.Keys(cat)})
	if err != nil {
		log.Fatal(err)
	}
	api, err := recordapi.New(recordapi.Options{Router: f.Router()})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Mount(mux, gate.Data)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	do := func(as, method, path, body string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keys[as])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if method != http.MethodGet {
			b = []byte(res.Header.Get("Content-Type")) // a write's answer has timestamps
		}
		fmt.Println(as, method, res.StatusCode, res.Header.Get("ETag"), strings.TrimSpace(string(b)))
	}
	do("acme", "PUT", "/v1/collections/invoices/records/inv-1", `{"total":120}`)
	do("acme", "GET", "/v1/collections", "")
	do("globex", "GET", "/v1/collections", "")
	do("globex", "DELETE", "/v1/collections/invoices/records/inv-1", "")
	do("globex", "GET", "/v1/collections/invoices/records/inv-1", "") // as absent as a missing record
	do("acme", "PUT", "/v1/collections/invoices/records/inv-1", `{"total":99}`)
	// Output:
	// acme PUT 201 "1" application/json
	// acme GET 200  {"items":[{"name":"invoices","records":1}]}
	// globex GET 200  {"items":[]}
	// globex DELETE 404  application/problem+json
	// globex GET 404  {"type":"https://bulkhead.dev/problems/not_found","title":"Not Found","status":404,"detail":"no such record in this collection","code":"not_found"}
	// acme PUT 200 "2" application/json
}
