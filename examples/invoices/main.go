// Command invoices is a small invoices service that uses Bulkhead as a
// library: its own invoices table (migrations embedded in the binary),
// applied by Bulkhead to every tenant placement on PostgreSQL, and HTTP
// endpoints behind Bulkhead's ingress gate, which takes the tenant from a
// Bulkhead API key, that open tenant-scoped pgx transactions with
// postgres.Tx.
//
//	invoices -postgres URL -postgres-admin URL tenant acme schema   # prints an API key
//	invoices -postgres URL -postgres-admin URL serve
//
// See README.md.
package main

import (
	"context"
	"errors"
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
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "invoices:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("invoices", flag.ContinueOnError)
	url := fs.String("postgres", os.Getenv("INVOICES_POSTGRES"), "PostgreSQL URL as the serving role (env INVOICES_POSTGRES)")
	admin := fs.String("postgres-admin", os.Getenv("INVOICES_POSTGRES_ADMIN"), "PostgreSQL URL as the owner role (env INVOICES_POSTGRES_ADMIN)")
	addr := fs.String("addr", "127.0.0.1:8090", "listen address for serve")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: invoices [flags] serve | tenant ID [pooled|schema|database]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *admin == "" {
		return errors.New("-postgres and -postgres-admin are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := Open(ctx, Config{URL: *url, AdminURL: *admin})
	if err != nil {
		return err
	}
	defer app.Close()

	switch cmd := fs.Arg(0); cmd {
	case "serve":
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
		log.Printf("invoices listening on http://%s", ln.Addr())
		// Serve returns once in-flight requests have finished (or 10s have
		// passed), so the deferred Close does not close the stores under them.
		return ingress.Serve(ctx, srv, ln, 10*time.Second)
	case "tenant":
		id, err := tenant.Parse(fs.Arg(1))
		if err != nil {
			return err
		}
		mode := store.Pooled
		if fs.NArg() > 2 {
			if mode, err = store.ParseMode(fs.Arg(2)); err != nil {
				return err
			}
		}
		token, err := app.CreateTenant(ctx, id, mode)
		if err != nil {
			return err
		}
		fmt.Println(token)
		return nil
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}
