package dashboard

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/limits"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// Defaults of Config.
const (
	DefaultPrefix      = "/dashboard"
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
	DefaultMaxSessions = 1024
	// DefaultMaxFailures is how many failed sign-ins a client address may
	// make per DefaultFailureWindow before it is refused (429) without its
	// token being looked at.
	DefaultMaxFailures   = 5
	DefaultFailureWindow = time.Minute
	// MaxFleet bounds the tenants the fleet answer lists.
	MaxFleet = 20_000
)

// Tenants is the fleet's registry as the dashboard reads it;
// *catalog.Catalog is one.
type Tenants interface {
	ListTenants(ctx context.Context, after string, limit int) ([]catalog.Tenant, error)
	Tenant(ctx context.Context, id tenant.ID) (catalog.Tenant, error)
}

// Usage gives a tenant's last known storage usage; *usage.Tracker is one.
type Usage interface {
	Usage(id tenant.ID) (store.Usage, bool)
}

// Audit gives the newest audit entries of some principal kinds;
// *audit.Log is one.
type Audit interface {
	Recent(ctx context.Context, limit int, kinds ...string) ([]audit.Entry, error)
}

// Recorder appends an entry to the audit log; *ingress.Gate is one. The
// dashboard records sign-ins (allowed and refused) and sign-outs on the
// control chain.
type Recorder interface {
	Record(ctx context.Context, chain string, p ingress.Principal, action, resource, decision string) error
}

// Config configures New. OperatorHash and Tenants are required; every
// other source may be nil, and the page then shows less.
type Config struct {
	// OperatorHash returns the SHA-256 of the current operator token. A
	// sign-in is checked against it in constant time, and a session made
	// under another hash (the token was rotated) is no longer valid.
	OperatorHash func() [32]byte
	Tenants      Tenants
	Limits       limits.Source
	Usage        Usage
	Health       Health
	Audit        Audit
	Recorder     Recorder

	// Prefix is the path the dashboard is mounted at (DefaultPrefix);
	// the handler expects the whole path, so mount it at Prefix+"/" and
	// Prefix on a mux without stripping.
	Prefix string
	// Origin is the dashboard's public origin ("https://ops.example.com")
	// when a proxy in front changes scheme or host; empty: the request's
	// own (https when it came over TLS, its Host).
	Origin string
	// SecureCookie marks the session cookie Secure even on plain HTTP
	// (behind a TLS-terminating proxy); it is Secure anyway over TLS.
	SecureCookie bool
	// IdleTimeout ends a session unused that long; MaxAge ends any
	// session that old. MaxSessions bounds the sessions kept (the least
	// recently used goes first).
	IdleTimeout time.Duration
	MaxAge      time.Duration
	MaxSessions int
	// MaxFailures failed sign-ins per FailureWindow and client address.
	MaxFailures   int
	FailureWindow time.Duration
	// Now is the clock (time.Now if nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Dashboard is the operator dashboard: an http.Handler serving the page,
// its assets, sign-in and sign-out, and the JSON API the page reads. It
// shows counts and latencies of tenants, never their records or any
// token. It is safe for concurrent use.
type Dashboard struct {
	cfg      Config
	sessions *sessions
	throttle *throttle
	assets   map[string]asset
	pages    *template.Template
}

//go:embed assets
var assetFS embed.FS

// asset is one embedded file served under <prefix>/assets/.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// ErrConfig is wrapped by New's errors.
var ErrConfig = errors.New("invalid dashboard config")

// New returns a Dashboard for cfg.
func New(cfg Config) (*Dashboard, error) {
	if cfg.OperatorHash == nil {
		return nil, fmt.Errorf("%w: OperatorHash is required (the SHA-256 of the operator token)", ErrConfig)
	}
	if cfg.Tenants == nil {
		return nil, fmt.Errorf("%w: Tenants is required (a *catalog.Catalog)", ErrConfig)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("%w: Prefix %q must start with '/' and not end with one (e.g. /dashboard)", ErrConfig, cfg.Prefix)
	}
	if cfg.Origin != "" && (strings.HasSuffix(cfg.Origin, "/") || !strings.Contains(cfg.Origin, "://")) {
		return nil, fmt.Errorf("%w: Origin %q must be scheme://host[:port] without a path", ErrConfig, cfg.Origin)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = DefaultFailureWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{cfg: cfg, sessions: newSessions(cfg), throttle: newThrottle(cfg.MaxFailures, cfg.FailureWindow)}
	var err error
	if d.assets, err = loadAssets(); err != nil {
		return nil, err
	}
	if d.pages, err = template.ParseFS(assetFS, "assets/*.html"); err != nil {
		return nil, fmt.Errorf("dashboard pages: %w", err)
	}
	return d, nil
}

var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// loadAssets reads the static assets (CSS, JS) once.
func loadAssets() (map[string]asset, error) {
	out := map[string]asset{}
	err := fs.WalkDir(assetFS, "assets", func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		name := strings.TrimPrefix(path, "assets/")
		i := strings.LastIndexByte(name, '.')
		ct, ok := contentTypes[name[i:]]
		if !ok {
			return nil // pages are templates
		}
		b, err := assetFS.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[name] = asset{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dashboard assets: %w", err)
	}
	return out, nil
}

// AssetBytes returns the total size of the embedded assets (pages, CSS,
// JS): what a browser may download to show the dashboard.
func AssetBytes() (int, error) {
	n := 0
	err := fs.WalkDir(assetFS, "assets", func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := assetFS.ReadFile(path)
		n += len(b)
		return err
	})
	return n, err
}

// csp is the Content-Security-Policy of every answer: only the
// dashboard's own script and style, no inline code, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// ServeHTTP implements http.Handler.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")

	p := d.cfg.Prefix
	path := r.URL.Path
	if path == p {
		http.Redirect(w, r, p+"/", http.StatusSeeOther)
		return
	}
	rest, ok := strings.CutPrefix(path, p+"/")
	if !ok {
		d.problem(w, http.StatusNotFound, "route_not_found", "no such dashboard page")
		return
	}
	switch {
	case rest == "":
		d.only(w, r, d.page, http.MethodGet)
	case rest == "signin":
		d.only(w, r, d.signIn, http.MethodPost)
	case rest == "signout":
		d.only(w, r, d.signOut, http.MethodPost)
	case strings.HasPrefix(rest, "assets/"):
		d.only(w, r, d.asset, http.MethodGet)
	case strings.HasPrefix(rest, "api/"):
		d.api(w, r, strings.TrimPrefix(rest, "api/"))
	default:
		d.problem(w, http.StatusNotFound, "route_not_found", "no such dashboard page")
	}
}

// only runs h for the methods given (GET includes HEAD), else answers 405.
func (d *Dashboard) only(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, method string) {
	m := r.Method
	if m == method || (method == http.MethodGet && m == http.MethodHead) {
		h(w, r)
		return
	}
	allow := method
	if method == http.MethodGet {
		allow += ", HEAD"
	}
	w.Header().Set("Allow", allow)
	d.problem(w, http.StatusMethodNotAllowed, "method_not_allowed", "use "+allow)
}

// asset serves <prefix>/assets/<name>; they hold no data and need no
// session.
func (d *Dashboard) asset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, d.cfg.Prefix+"/assets/")
	a, ok := d.assets[name]
	if !ok {
		d.problem(w, http.StatusNotFound, "route_not_found", "no such asset")
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}

// pageData fills the page templates.
type pageData struct {
	Prefix string
	CSRF   string
	Error  string
}

// page answers the dashboard to a signed-in operator and the sign-in
// form to anyone else.
func (d *Dashboard) page(w http.ResponseWriter, r *http.Request) {
	s, ok := d.session(r)
	if !ok {
		d.signInPage(w, http.StatusOK, "")
		return
	}
	d.render(w, http.StatusOK, "index.html", pageData{Prefix: d.cfg.Prefix, CSRF: s.csrf})
}

func (d *Dashboard) signInPage(w http.ResponseWriter, status int, msg string) {
	d.render(w, status, "signin.html", pageData{Prefix: d.cfg.Prefix, Error: msg})
}

func (d *Dashboard) render(w http.ResponseWriter, status int, name string, data pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := d.pages.ExecuteTemplate(w, name, data); err != nil {
		d.cfg.Logger.Error("dashboard page", slog.String("page", name), slog.String("error", err.Error()))
	}
}
