package admission_test

import (
	"context"
	"testing"

	"github.com/bulkhead-dev/bulkhead/admission"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

type ctxKey struct{}

func TestOnWaitSeesOnlyRequestsThatWait(t *testing.T) {
	waited := make(chan any, 2)
	c := admission.New(admission.Options{Capacity: 1, OnWait: func(ctx context.Context, id tenant.ID) { waited <- ctx.Value(ctxKey{}) }})
	acme := tenant.MustParse("acme")
	release, err := c.Acquire(context.WithValue(t.Context(), ctxKey{}, "first"), acme)
	if err != nil {
		t.Fatal(err)
	}
	if len(waited) != 0 {
		t.Fatal("OnWait called for a request admitted at once")
	}
	done := make(chan error)
	go func() {
		r, err := c.Acquire(context.WithValue(t.Context(), ctxKey{}, "second"), acme)
		if err == nil {
			r()
		}
		done <- err
	}()
	if v := <-waited; v != "second" {
		t.Fatalf("OnWait got the context of %v", v)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
