package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// dashboard signs in to the operator dashboard (first with credentials
// that must be refused, each a secret pushed through the sign-in form),
// registers the session cookie as a secret, and keeps the page and every
// API answer for the scan.
func (w *leakWorld) dashboard(t *testing.T, wrong ...string) {
	t.Helper()
	e := w.e
	client := *e.http.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	signIn := func(tok string) resp {
		req, err := http.NewRequest("POST", e.http.URL+"/dashboard/signin", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", e.http.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return resp{status: res.StatusCode, header: res.Header}
	}
	for _, tok := range wrong {
		if r := signIn(tok); r.status == http.StatusSeeOther {
			t.Fatalf("the dashboard let %q in", tok[:6])
		}
	}
	r := signIn(e.op)
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "bulkhead_dashboard" {
			cookie = c
		}
	}
	if r.status != http.StatusSeeOther || cookie == nil {
		t.Fatalf("dashboard sign-in: %d %s", r.status, r.body)
	}
	w.secret.add("dashboard session cookie", cookie.Value)
	w.secret.windowed["dashboard session cookie"] = len(cookie.Value) >= leakWindow
	get := func(name, path string) {
		r := e.req("GET", path, "", nil, "Cookie", cookie.Name+"="+cookie.Value)
		want(t, r, 200, "")
		w.responses[name] = string(r.body)
	}
	get("dashboard page", "/dashboard/")
	for _, api := range []string{"fleet", "top", "audit", "tenants/alpha", "tenants/beta"} {
		get("dashboard API "+api, "/dashboard/api/"+api)
	}
	if !strings.Contains(w.responses["dashboard API fleet"], `"alpha"`) {
		t.Fatalf("the fleet does not show alpha; the scan would prove little:\n%s", w.responses["dashboard API fleet"])
	}
}
