package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/bulkhead-dev/bulkhead/server"
)

// xssName is a tenant name that runs script if the page ever puts it in
// the DOM as markup.
const xssName = `<img src=x onerror=alert(1)>`

func TestBrowserSignInFleetDrillDownSignOut(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t, server.Options{})
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("tenant-%02d", i)
		name := "Tenant " + id
		if i == 3 {
			name = xssName
		}
		key := e.tenant(id, name)
		ids = append(ids, id)
		for j := range i + 1 { // real requests: the monitor's history has points
			e.do("GET", "/v1/collections/notes/records/r"+fmt.Sprint(j), nil, "Authorization", "Bearer "+key)
		}
	}

	b.signIn(e.http.URL, e.op)
	rows := eval[[]string](b, `Array.from(document.querySelectorAll("#fleet tbody tr")).map(r => r.dataset.id)`)
	slices.Sort(rows)
	if !slices.Equal(rows, ids) {
		t.Fatalf("fleet table rows %q, want the server's tenants %q", rows, ids)
	}
	// The page preloads the fleet, and the script's request takes the
	// preloaded answer: one request before the first render, not two (the
	// page's refresh, every 15 s, comes later).
	if n := eval[int](b, `performance.getEntriesByType("resource").filter(r => new URL(r.name).pathname.endsWith("/api/fleet") &&
		r.startTime < performance.getEntriesByName("fleet-rendered")[0].startTime).length`); n != 1 {
		t.Fatalf("the fleet was fetched %d times, want once (the preload must match the script's fetch)", n)
	}
	// The hostile name is text in its cell, and no element came of it.
	if got := eval[string](b, `document.querySelector('#fleet tr[data-id="tenant-03"] td:nth-child(2)').textContent`); got != xssName {
		t.Fatalf("tenant-03's name cell reads %q, want the name as text %q", got, xssName)
	}
	if n := eval[int](b, `document.querySelectorAll("main img").length`); n != 0 {
		t.Fatalf("%d img elements in the page: a tenant name became markup", n)
	}

	// The session cookie: HttpOnly (script cannot read it), SameSite=Strict.
	if c := eval[string](b, `document.cookie`); c != "" {
		t.Fatalf("script reads the cookies %q", c)
	}
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{e.http.URL + "/dashboard/"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies.Cookies) != 1 {
		t.Fatalf("cookies %+v, want the one session cookie", cookies.Cookies)
	}
	if c := cookies.Cookies[0]; !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/dashboard" || strings.Contains(e.op, c.Value) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/dashboard, not the token", c)
	}
	// Nor is the token anywhere the page can reach.
	if eval[bool](b, `document.documentElement.outerHTML.includes(`+jsString(e.op)+`) || JSON.stringify(localStorage).includes(`+jsString(e.op)+`) || JSON.stringify(sessionStorage).length > 2`) {
		t.Fatal("the operator token is kept in the page or browser storage")
	}

	// Drill-down: the requests chart draws a line through the history.
	b.do(chromedp.Click(`#fleet tr[data-id="tenant-11"]`), chromedp.WaitReady(`body[data-detail="tenant-11"]`))
	d := eval[string](b, `document.querySelector("#chart-requests path.line").getAttribute("d")`)
	if !strings.HasPrefix(d, "M") || strings.Count(d, "L") < 10 {
		t.Fatalf("requests chart path %q: want a line through the history's points", d)
	}
	if title := eval[string](b, `document.getElementById("detail-title").textContent`); !strings.HasPrefix(title, "tenant-11") {
		t.Fatalf("drill-down title %q", title)
	}
	// Filter and sort work on the same rows.
	b.do(chromedp.SendKeys("#filter", "tenant-0"))
	if n := eval[int](b, `document.querySelectorAll("#fleet tbody tr").length`); n != 10 {
		t.Fatalf("filter tenant-0 shows %d rows, want 10", n)
	}
	b.clean()

	// Sign out: the form again, and the API refuses the browser.
	b.do(chromedp.Click("#signout"), chromedp.WaitVisible("#token"))
	if st := eval[int](b, `fetch("/dashboard/api/fleet").then(r => r.status)`); st != 401 {
		t.Fatalf("the API after sign-out answers %d, want 401", st)
	}
	if n := eval[int](b, `fetch("/dashboard/api/fleet").then(r => r.status)`); n != 401 {
		t.Fatal("signed out, still served")
	}
}

func TestBrowserRefusesAWrongTokenAndCrossOriginPosts(t *testing.T) {
	b := newBrowser(t)
	e := newEnv(t, server.Options{})
	e.tenant("acme", "Acme")

	b.do(chromedp.Navigate(e.http.URL+"/dashboard/"), chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", "bko_not-the-token"), chromedp.Submit("#token"),
		chromedp.WaitVisible(".error"))
	if msg := eval[string](b, `document.querySelector(".error").textContent`); !strings.Contains(msg, "not the operator token") {
		t.Fatalf("wrong token: message %q", msg)
	}
	if st := eval[int](b, `fetch("/dashboard/api/fleet").then(r => r.status)`); st != 401 {
		t.Fatalf("API after a refused sign-in: %d, want 401", st)
	}
	b.mu.Lock()
	b.problems = nil // the 401 of the refused sign-in page is logged as a failed load
	b.mu.Unlock()

	b.signIn(e.http.URL, e.op)
	// Another site (localhost is not 127.0.0.1) posts to the dashboard.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>evil</title><p id="done">`)
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	dash := e.http.URL
	b.do(chromedp.Navigate(evilURL + "/"))
	for _, path := range []string{"/dashboard/signout", "/dashboard/signin"} {
		eval[bool](b, `fetch(`+jsString(dash+path)+`, {method: "POST", mode: "no-cors", credentials: "include",
			headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "token=x"}).then(() => true, () => true)`)
	}
	b.mu.Lock()
	b.problems = nil // the evil page's failed loads (CORP blocks the answers)
	b.mu.Unlock()
	// The session survived the forged sign-out.
	b.do(chromedp.Navigate(dash+"/dashboard/"), chromedp.WaitReady(`body[data-rendered="fleet"]`))
	if n := eval[int](b, `document.querySelectorAll("#fleet tbody tr").length`); n != 1 {
		t.Fatalf("after the forged posts the fleet shows %d rows, want acme", n)
	}
	b.clean()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "<", `\x3c`)
	return `"` + r.Replace(s) + `"`
}
