package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
)

// CookieName is the session cookie's name.
const CookieName = "bulkhead_dashboard"

// CSRFHeader carries the session's CSRF token on every state-changing
// request the page makes.
const CSRFHeader = "X-CSRF-Token"

// Audit actions the dashboard records on the control chain.
const (
	SignInAction  = "dashboard.signin"
	SignOutAction = "dashboard.signout"
)

// maxTokenBytes bounds the operator token a sign-in form may carry.
const maxTokenBytes = 1024

var operator = ingress.Principal{Kind: ingress.KindOperator, ID: "operator", Role: "operator"}

// session is one signed-in browser. The cookie holds a random 256-bit
// id; the server keeps only its SHA-256 (the map key).
type session struct {
	csrf    string
	created time.Time
	seen    time.Time // guarded by sessions.mu
	opHash  [32]byte  // the operator token's hash at sign-in
}

// sessions are the server-side sessions, bounded.
type sessions struct {
	cfg Config
	mu  sync.Mutex
	m   map[[32]byte]*session // guarded by mu
}

func newSessions(cfg Config) *sessions {
	return &sessions{cfg: cfg, m: map[[32]byte]*session{}}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("dashboard: crypto/rand failed: " + err.Error()) // never returns an error since Go 1.24
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create makes a session and returns the cookie value.
func (ss *sessions) create(opHash [32]byte) (string, *session) {
	id := randomToken()
	now := ss.cfg.Now()
	s := &session{csrf: randomToken(), created: now, seen: now, opHash: opHash}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.expire(now)
	for len(ss.m) >= ss.cfg.MaxSessions { // the least recently used gives way
		var oldest [32]byte
		var at time.Time
		for k, v := range ss.m {
			if at.IsZero() || v.seen.Before(at) {
				oldest, at = k, v.seen
			}
		}
		delete(ss.m, oldest)
	}
	ss.m[sha256.Sum256([]byte(id))] = s
	return id, s
}

// expire drops the sessions past their idle or absolute expiry; mu held.
func (ss *sessions) expire(now time.Time) {
	for k, s := range ss.m {
		if !ss.live(s, now) {
			delete(ss.m, k)
		}
	}
}

func (ss *sessions) live(s *session, now time.Time) bool {
	return now.Sub(s.seen) < ss.cfg.IdleTimeout && now.Sub(s.created) < ss.cfg.MaxAge
}

// get returns the live session of cookie value id, made under opHash,
// and marks it used.
func (ss *sessions) get(id string, opHash [32]byte) (*session, bool) {
	key := sha256.Sum256([]byte(id))
	now := ss.cfg.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[key]
	if !ok {
		return nil, false
	}
	if !ss.live(s, now) || subtle.ConstantTimeCompare(s.opHash[:], opHash[:]) != 1 {
		delete(ss.m, key)
		return nil, false
	}
	s.seen = now
	return s, true
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, sha256.Sum256([]byte(id)))
}

// Sessions returns how many sessions are live.
func (d *Dashboard) Sessions() int {
	ss := d.sessions
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.expire(ss.cfg.Now())
	return len(ss.m)
}

// session returns the request's live session.
func (d *Dashboard) session(r *http.Request) (*session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 64 {
		return nil, false
	}
	return d.sessions.get(c.Value, d.cfg.OperatorHash())
}

// origin is the dashboard's own origin for r.
func (d *Dashboard) origin(r *http.Request) string {
	if d.cfg.Origin != "" {
		return d.cfg.Origin
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// sameOrigin reports whether a state-changing request comes from the
// dashboard's own pages: Sec-Fetch-Site, when sent, must be same-origin,
// and Origin, when sent, must be the dashboard's. A browser sends
// "Origin: null" for a form posted from a page with Referrer-Policy
// no-referrer (as the dashboard's are); then, as when Origin is missing,
// only Sec-Fetch-Site: same-origin, which no page can forge, lets it in.
func (d *Dashboard) sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return site == "same-origin"
	}
	return o == d.origin(r)
}

// cookie makes the session cookie (value "" and MaxAge -1 delete it).
func (d *Dashboard) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: value, Path: d.cfg.Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || d.cfg.SecureCookie}
}

// signIn: POST <prefix>/signin, form field "token". A good token gets a
// session cookie and a redirect to the page; a wrong one the form again
// (401), after a few per client address 429.
func (d *Dashboard) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !d.sameOrigin(r) {
		d.signInPage(w, http.StatusForbidden, "This sign-in did not come from the dashboard's own page.")
		return
	}
	client := clientKey(r.RemoteAddr)
	now := d.cfg.Now()
	if wait := d.throttle.wait(client, now); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		d.signInPage(w, http.StatusTooManyRequests, "Too many failed sign-ins from this address; wait a minute and try again.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4*maxTokenBytes)
	// A form that does not parse (too big, malformed) is a failed attempt.
	formErr := r.ParseForm()
	token := r.PostForm.Get("token")
	want := d.cfg.OperatorHash()
	var authErr error
	if formErr == nil && len(token) <= maxTokenBytes {
		_, authErr = ingress.OperatorToken(want).Authenticate(r.Context(), token) // the gate's own check
	}
	if formErr != nil || len(token) > maxTokenBytes || authErr != nil {
		d.throttle.fail(client, now)
		d.record(r, ingress.Principal{}, SignInAction, "deny:unauthenticated")
		d.signInPage(w, http.StatusUnauthorized, "That is not the operator token.")
		return
	}
	if err := d.record(r, operator, SignInAction, "allow"); err != nil {
		d.signInPage(w, http.StatusServiceUnavailable, "The sign-in could not be recorded in the audit log; try again.")
		return
	}
	d.throttle.forget(client)
	id, _ := d.sessions.create(want)
	http.SetCookie(w, d.cookie(r, id, int(d.cfg.MaxAge/time.Second)))
	http.Redirect(w, r, d.cfg.Prefix+"/", http.StatusSeeOther)
}

// signOut: POST <prefix>/signout with the CSRF header; deletes the
// session on the server and the cookie in the browser (204).
func (d *Dashboard) signOut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if _, ok := d.checkWrite(w, r); !ok {
		return
	}
	c, _ := r.Cookie(CookieName) // checkWrite found it
	d.sessions.delete(c.Value)
	_ = d.record(r, operator, SignOutAction, "allow")
	http.SetCookie(w, d.cookie(r, "", -1))
	w.WriteHeader(http.StatusNoContent)
}

// checkWrite guards a state-changing request: a live session, the same
// origin and the session's CSRF token in CSRFHeader. It answers the
// problem itself when one is missing.
func (d *Dashboard) checkWrite(w http.ResponseWriter, r *http.Request) (*session, bool) {
	if !d.sameOrigin(r) {
		d.problem(w, http.StatusForbidden, "cross_origin", "state-changing requests must come from the dashboard's own page")
		return nil, false
	}
	s, ok := d.session(r)
	if !ok {
		d.problem(w, http.StatusUnauthorized, "unauthenticated", "sign in to the dashboard first")
		return nil, false
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		d.problem(w, http.StatusForbidden, "csrf_token_invalid", "the request lacks the session's CSRF token in "+CSRFHeader+"; reload the page")
		return nil, false
	}
	return s, true
}

// record appends an entry on the control chain (nil Recorder: nothing).
func (d *Dashboard) record(r *http.Request, p ingress.Principal, action, decision string) error {
	if d.cfg.Recorder == nil {
		return nil
	}
	return d.cfg.Recorder.Record(r.Context(), audit.ControlChain, p, action, "", decision)
}

// clientKey is the throttle's key for a remote address: the IP, or the
// /64 of an IPv6 address (one host usually holds a whole /64).
func clientKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// throttle counts failed sign-ins per client in fixed windows.
type throttle struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	m      map[string]*failures // guarded by mu
}

type failures struct {
	start time.Time
	n     int
}

// maxThrottled bounds the client addresses the throttle remembers.
const maxThrottled = 10_000

func newThrottle(max int, window time.Duration) *throttle {
	return &throttle{max: max, window: window, m: map[string]*failures{}}
}

// wait returns how long client must wait before its next attempt (0: it
// may try now).
func (t *throttle) wait(client string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[client]
	if !ok || now.Sub(f.start) >= t.window {
		return 0
	}
	if f.n < t.max {
		return 0
	}
	return t.window - now.Sub(f.start)
}

func (t *throttle) fail(client string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[client]
	if !ok || now.Sub(f.start) >= t.window {
		if len(t.m) >= maxThrottled {
			for k, v := range t.m {
				if now.Sub(v.start) >= t.window {
					delete(t.m, k)
				}
			}
		}
		if len(t.m) >= maxThrottled { // still full: forget one at random
			for k := range t.m {
				delete(t.m, k)
				break
			}
		}
		f = &failures{start: now}
		t.m[client] = f
	}
	f.n++
}

func (t *throttle) forget(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, client)
}
