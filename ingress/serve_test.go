package ingress_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/ingress"
)

// These tests use a real listener and real time: testing/synctest does
// not fake the network, so the durations are short and only the order of
// events is asserted.

// slowServer answers every request once release is closed (or the
// request's context ends), after telling started.
type slowServer struct {
	srv      *http.Server
	ln       net.Listener
	started  chan struct{} // closed when the first request arrives
	release  chan struct{} // closed by the test to let requests finish
	shutdown chan struct{} // closed when Shutdown begins
	answered atomic.Bool   // set by the handler once it has written its answer
}

func newSlowServer(t *testing.T) *slowServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &slowServer{ln: ln, started: make(chan struct{}), release: make(chan struct{}), shutdown: make(chan struct{})}
	var once sync.Once
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(s.started) })
		select {
		case <-s.release:
			_, _ = io.WriteString(w, "done")
			s.answered.Store(true)
		case <-r.Context().Done():
		}
	})}
	s.srv.RegisterOnShutdown(func() { close(s.shutdown) })
	return s
}

// get sends one request to s and reports its body or error on the channel.
func (s *slowServer) get() <-chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.ln.Addr().String() + "/")
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		out <- string(b)
	}()
	return out
}

// serve runs ingress.Serve in the background; its result arrives on the
// channel.
func serve(ctx context.Context, s *slowServer, grace time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() { done <- ingress.Serve(ctx, s.srv, s.ln, grace) }()
	return done
}

func TestServeReturnsOnlyAfterTheRequestInFlightFinished(t *testing.T) {
	s := newSlowServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := serve(ctx, s, 10*time.Second)
	answer := s.get()
	<-s.started
	cancel()
	<-s.shutdown
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(s.release)
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v, want nil: the request finished within the grace period", err)
	}
	if !s.answered.Load() {
		t.Fatal("Serve returned before the request in flight was answered")
	}
	if got := <-answer; got != "done" {
		t.Fatalf("the request in flight got %q, want its whole answer", got)
	}
	if _, err := net.Dial("tcp", s.ln.Addr().String()); err == nil {
		t.Fatal("the listener still accepts after Serve returned")
	}
}

func TestServeReportsARequestThatOutlivesTheGracePeriod(t *testing.T) {
	s := newSlowServer(t)
	defer close(s.release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := serve(ctx, s, 50*time.Millisecond)
	answer := s.get()
	<-s.started
	cancel()
	err := <-served
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve: %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if got := <-answer; got == "done" {
		t.Fatal("the request outlived the grace period yet was answered")
	}
}

func TestServeReturnsTheListenersFailure(t *testing.T) {
	s := newSlowServer(t)
	s.ln.Close()
	err := <-serve(context.Background(), s, time.Second)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve on a closed listener: %v, want its error", err)
	}
}

func TestServeWithAContextAlreadyDoneClosesTheListener(t *testing.T) {
	s := newSlowServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := <-serve(ctx, s, time.Second); err != nil {
		t.Fatalf("Serve: %v, want nil", err)
	}
	if _, err := net.Dial("tcp", s.ln.Addr().String()); err == nil {
		t.Fatal("the listener still accepts after Serve returned")
	}
}
