// Command tasks-http is a small to-do service that protects itself with
// Bulkhead's parts alone: tenant users sign in at their own identity
// provider, Bulkhead's ingress gate verifies their JWT and puts their
// tenant in the request's context, and the handlers run their own SQL on
// the tenant's own SQLite file (database mode), migrated by Bulkhead.
//
//	tasks-http -data-dir DIR -tenants tenants.json -addr 127.0.0.1:8092
//
// See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/ingress"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tasks-http:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tasks-http", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./tasks-data", "data directory")
	tenants := fs.String("tenants", "tenants.json", "the tenants and the JWT issuers each trusts (JSON)")
	addr := fs.String("addr", "127.0.0.1:8092", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := LoadDirectory(*tenants)
	if err != nil {
		return err
	}
	app, err := Open(ctx, *dataDir, dir)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("tasks-http listening on http://%s", ln.Addr())
	// Serve returns once in-flight requests have finished (or 10s have
	// passed), so the deferred Close does not close the stores under them.
	return ingress.Serve(ctx, srv, ln, 10*time.Second)
}
