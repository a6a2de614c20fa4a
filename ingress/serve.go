package ingress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on ln until ctx is done, then shuts srv down
// gracefully: it stops accepting, lets the requests in flight finish for
// at most grace, and returns only once the shutdown is over, so a caller
// may close its stores as soon as Serve returns. It returns nil if every
// request finished; an error wrapping context.DeadlineExceeded if some
// did not within grace (their connections are then closed); and the
// server's error if it stopped before ctx was done (ln failed, say). ln is
// closed in every case.
//
//	ln, err := net.Listen("tcp", addr)
//	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
//	err = ingress.Serve(ctx, srv, ln, 10*time.Second) // ctx: signal.NotifyContext
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", grace, err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
