package server_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/server"
)

// TestJWTRefusalsAreLoggedAtDebugWithoutTheToken sends refused JWTs and
// finds each one's reason in the debug log, under the request's id, with
// no part of the token in the log.
func TestJWTRefusalsAreLoggedAtDebugWithoutTheToken(t *testing.T) {
	e, p, clk := jwtEnv(t, server.Options{})
	now := clk.now()
	expired := p.claims("a", "alpha", "writer", now.Add(-time.Hour))
	wrongKey := p.claims("a", "alpha", "writer", now) // signed with b's key
	for name, tok := range map[string]string{
		"expired":   p.token(t, "a", expired),
		"wrong key": p.token(t, "b", wrongKey),
	} {
		t.Run(name, func(t *testing.T) {
			r := e.req("GET", "/v1/collections", tok, nil)
			want(t, r, 401, "")
			id := r.header.Get("X-Request-ID")
			var reason string
			for line := range strings.SplitSeq(e.logs.String(), "\n") {
				var l struct {
					Level, Msg, Reason string
					RequestID          string `json:"request_id"`
				}
				if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "jwt refused" && l.RequestID == id {
					if l.Level != "DEBUG" {
						t.Errorf("logged at %s", l.Level)
					}
					reason = l.Reason
				}
			}
			if reason == "" {
				t.Fatalf("no debug line gives the reason for request %s:\n%s", id, e.logs.String())
			}
			t.Logf("reason: %s", reason)
			for i, part := range strings.Split(tok, ".") {
				if strings.Contains(e.logs.String(), part) {
					t.Errorf("the log holds part %d of the token", i)
				}
			}
		})
	}
}
