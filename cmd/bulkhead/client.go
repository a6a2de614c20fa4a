package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

// maxResponseBytes bounds what the client reads from one response.
const maxResponseBytes = 64 << 20

// client talks to the v1 API of one Bulkhead server with the operator token.
// Its errors say what went wrong and how to fix it.
type client struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string
	http  *http.Client
}

// newClient resolves the server's address and the operator token: --token
// (or BULKHEAD_TOKEN), else the token file in --data-dir.
func newClient(g *globals, token string) (*client, error) {
	base, err := baseURL(g.addr)
	if err != nil {
		return nil, err
	}
	if token == "" {
		t, err := server.ReadOperatorToken(g.dataDir)
		if err != nil {
			return nil, fmt.Errorf("no operator token (pass --token or BULKHEAD_TOKEN, "+
				"or set --data-dir or BULKHEAD_DATA_DIR to the server's data directory): %w", err)
		}
		token = t
	}
	return &client{base: base, token: token, http: &http.Client{Timeout: time.Minute}}, nil
}

// baseURL turns --addr (host:port, :port, or an http(s) URL) into the
// base URL of the API.
func baseURL(addr string) (string, error) {
	hint := fmt.Sprintf("use host:port or a URL, e.g. %s or http://%s; set --addr or BULKHEAD_ADDR", defaultAddr, defaultAddr)
	if addr == "" {
		return "", fmt.Errorf("no server address (%s)", hint)
	}
	if !strings.Contains(addr, "://") {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("invalid address %q: %v (%s)", addr, err, hint)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		return "http://" + net.JoinHostPort(host, port), nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("invalid address %q: %v (%s)", addr, err, hint)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("invalid address %q: scheme must be http or https (%s)", addr, hint)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid address %q: want scheme://host[:port][/path] (%s)", addr, hint)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// do sends a request with the operator token and returns the body of a
// successful response. body, when not nil, is sent as JSON. A problem+json
// response becomes an *apiError; a transport failure an error that says how
// to reach the server.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read response from %s: %w", c.base, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, nil
	}
	return nil, c.responseError(resp, data, path)
}

// call is do that also decodes a successful response into out (when out is
// not nil); it returns the raw body for --json.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body, out any) ([]byte, error) {
	raw, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decode response of %s %s: %w (is --addr pointing at a bulkhead server?)", method, path, err)
		}
	}
	return raw, nil
}

// transportError explains a request that got no HTTP response.
func (c *client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	hint := "(set --addr or BULKHEAD_ADDR)"
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach bulkhead at %s: is `bulkhead serve` running? %s", c.base, hint)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot reach bulkhead at %s: unknown host %q %s", c.base, dnsErr.Name, hint)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("bulkhead at %s did not answer within %s: is the address right and the server healthy? %s", c.base, c.http.Timeout, hint)
	}
	return fmt.Errorf("cannot reach bulkhead at %s: %v %s", c.base, unwrapURLError(err), hint)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// apiError is a problem+json response of the v1 API.
type apiError struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id"` // or the X-Request-ID header

	tenant string // the tenant the request named, for hints
}

// pathTenant returns the tenant id a control-plane path names, or "".
func pathTenant(path string) string {
	rest, ok := strings.CutPrefix(path, "/v1/admin/tenants/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	if id, err := url.PathUnescape(id); err == nil {
		return id
	}
	return ""
}

func (e *apiError) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	s := fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Code, e.Status)
	if h := e.hint(); h != "" {
		s += ": " + h
	}
	return s
}

// hint says how to fix the problem, for codes where the server's detail
// cannot know (it does not know which flag the token came from).
func (e *apiError) hint() string {
	switch e.Code {
	case "unauthenticated":
		return "the operator token was refused; pass the server's <data-dir>/operator.token with --token or BULKHEAD_TOKEN, or set --data-dir to the server's data directory"
	case "forbidden":
		return "this token may not use the control plane (a tenant API key is not the operator token); use the server's <data-dir>/operator.token"
	case "tenant_not_found":
		return "see the tenants with `bulkhead tenant list`"
	case "tenant_exists":
		return "see it with `bulkhead tenant show " + e.tenantOr("ID") + "`"
	case "key_not_found":
		return "see the tenant's keys with `bulkhead key list " + e.tenantOr("TENANT") + "`"
	case "job_not_found":
		return "a job id is what `bulkhead tenant rotate-key` printed (job_...)"
	case "rotation_in_progress":
		return "wait for that job with `bulkhead job show JOB` (or `rotate-key --wait`), then rotate again if you need another new key"
	case "encryption_disabled":
		return "the server runs with --encryption=false; restart it without that flag to encrypt records and rotate keys"
	case "route_not_found", "method_not_allowed":
		return "is --addr pointing at a bulkhead server of the same version?"
	case "internal", "unavailable":
		if e.RequestID != "" {
			return "see the server's log for request_id " + e.RequestID
		}
		return "see the server's log"
	}
	return ""
}

// tenantOr returns the tenant the request named, or placeholder.
func (e *apiError) tenantOr(placeholder string) string {
	if e.tenant == "" {
		return placeholder
	}
	return cell(e.tenant)
}

// responseError turns a non-2xx response into an error: an *apiError for
// problem+json, else a short quote of what came back.
func (c *client) responseError(resp *http.Response, data []byte, path string) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		var p apiError
		if err := json.Unmarshal(data, &p); err == nil && p.Code != "" {
			if p.Status == 0 {
				p.Status = resp.StatusCode
			}
			if p.RequestID == "" {
				p.RequestID = resp.Header.Get("X-Request-Id")
			}
			p.tenant = pathTenant(path)
			return &p
		}
	}
	snippet := strings.TrimSpace(string(data))
	if len(snippet) > 200 {
		snippet = snippet[:200] + "…"
	}
	if snippet == "" {
		snippet = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("unexpected HTTP %d from %s: %s (is --addr pointing at a bulkhead server?)",
		resp.StatusCode, c.base, snippet)
}
