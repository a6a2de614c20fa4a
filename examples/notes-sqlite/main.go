// Command notes-sqlite is a small notes service that uses Bulkhead as a
// library on the embedded default: its own notes table (migrations
// embedded in the binary) in each tenant's own SQLite file (database
// mode), and HTTP endpoints behind Bulkhead's ingress gate, which takes
// the tenant from a Bulkhead API key, that run their own SQL with
// sqlite.Tx and sqlite.ReadTx.
//
//	notes-sqlite -data-dir DIR tenant acme   # prints an API key
//	notes-sqlite -data-dir DIR serve
//
// See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "notes-sqlite:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("notes-sqlite", flag.ContinueOnError)
	dir := fs.String("data-dir", envOr("NOTES_DATA_DIR", "./notes-data"), "data directory (env NOTES_DATA_DIR)")
	addr := fs.String("addr", "127.0.0.1:8091", "listen address for serve")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), errUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cmd := fs.Arg(0)
	if cmd != "serve" && cmd != "tenant" {
		fs.Usage()
		return errUsage
	}
	app, err := Open(ctx, *dir)
	if err != nil {
		return err
	}
	defer app.Close()
	if cmd == "tenant" {
		id, err := tenant.Parse(fs.Arg(1))
		if err != nil {
			return err
		}
		token, err := app.CreateTenant(ctx, id)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, token)
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Printf("notes-sqlite listening on http://%s", ln.Addr())
	// Serve returns once in-flight requests have finished (or 10s have
	// passed), so the deferred Close does not close the stores under them.
	return ingress.Serve(ctx, srv, ln, 10*time.Second)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
