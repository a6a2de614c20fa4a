// Command grpc-notes is a small notes service over gRPC that uses Bulkhead
// as a library: its own notes table in PostgreSQL's pooled schema (one
// table for every tenant, row-level security forced), read and written
// through tenant-scoped pgx transactions, behind Bulkhead's gRPC
// interceptors that take the tenant from a Bulkhead API key.
//
//	grpc-notes -postgres URL -postgres-admin URL tenant acme [writer]   # prints an API key
//	grpc-notes -postgres URL -postgres-admin URL serve
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
	"os"
	"os/signal"
	"syscall"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-notes:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("grpc-notes", flag.ContinueOnError)
	url := fs.String("postgres", os.Getenv("NOTES_POSTGRES"), "PostgreSQL URL as the serving role (env NOTES_POSTGRES)")
	admin := fs.String("postgres-admin", os.Getenv("NOTES_POSTGRES_ADMIN"), "PostgreSQL URL as the owner role (env NOTES_POSTGRES_ADMIN)")
	addr := fs.String("addr", "127.0.0.1:8093", "listen address for serve")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: grpc-notes [flags] serve | tenant ID [admin|writer|reader]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *admin == "" {
		return errors.New("-postgres and -postgres-admin are required")
	}
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
		srv := app.Server()
		go func() { <-ctx.Done(); srv.GracefulStop() }()
		log.Printf("grpc-notes listening on %s", ln.Addr())
		return srv.Serve(ln)
	case "tenant":
		id, err := tenant.Parse(fs.Arg(1))
		if err != nil {
			return err
		}
		role := catalog.RoleWriter
		if fs.NArg() > 2 {
			if role, err = catalog.ParseRole(fs.Arg(2)); err != nil {
				return err
			}
		}
		token, err := app.CreateTenant(ctx, id, role)
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
