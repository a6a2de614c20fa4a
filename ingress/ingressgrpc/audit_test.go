package ingressgrpc_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-dev/bulkhead/audit"
	"github.com/bulkhead-dev/bulkhead/ingress"
)

// downLog is an audit log whose appends fail while down is set.
type downLog struct {
	*audit.Log
	down atomic.Bool
}

func (l *downLog) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if l.down.Load() {
		return audit.Entry{}, errors.New("disk I/O error")
	}
	return l.Log.Append(ctx, e)
}

// TestAnAnswerThatCannotBeAuditedIsWithheld: an audited call (a support
// agent's read) whose entry cannot be written fails with Unavailable
// instead of returning the handler's answer.
func TestAnAnswerThatCannotBeAuditedIsWithheld(t *testing.T) {
	var log *downLog
	f := newFixture(t, func(c *ingress.Config) {
		log = &downLog{Log: c.Audit.(*audit.Log)}
		c.Audit = log
	})
	log.down.Store(true)
	err := f.check("", agentSam, actAsKey, "acme")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "audit_unavailable") {
		t.Fatalf("with the audit log down: %v, want Unavailable audit_unavailable", err)
	}
	log.down.Store(false)
	if err := f.check("", agentSam, actAsKey, "acme"); err != nil {
		t.Fatalf("with the audit log back: %v", err)
	}
	f.audited("acme", "support:sam", "record.read", "allow")
}
