// Command devissuer is a stand-in identity provider for trying tasks-http
// on one machine: it signs tenant users' JWTs with an Ed25519 key kept in a
// file (created on first use) and serves the key's public half as a JWKS.
// It signs whatever it is asked to, so it is for local trials only: a real
// service trusts its tenants' own identity providers.
//
//	devissuer serve                # JWKS at $DEV_ISSUER/.well-known/jwks.json
//	devissuer token acme writer    # a token for a user of acme, valid for an hour
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devissuer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("devissuer", flag.ContinueOnError)
	issuer := fs.String("issuer", envOr("DEV_ISSUER", "http://127.0.0.1:8099"), "the tokens' iss; serve listens on its host (env DEV_ISSUER)")
	keyFile := fs.String("key", "dev-issuer.jwk", "the signing key's file, created if missing")
	audience := fs.String("audience", "tasks", "the tokens' aud")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := loadKey(*keyFile)
	if err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "serve":
		u, err := url.Parse(*issuer)
		if err != nil {
			return err
		}
		pub, err := key.PublicKey()
		if err != nil {
			return err
		}
		jwks, err := json.Marshal(map[string]any{"keys": []jwk.Key{pub}})
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(jwks)
		})
		srv := &http.Server{Addr: u.Host, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case "token":
		now := time.Now()
		tok, err := jwt.NewBuilder().Issuer(*issuer).Audience([]string{*audience}).Subject("dev-user").
			IssuedAt(now).Expiration(now.Add(time.Hour)).
			Claim("tenant", fs.Arg(1)).Claim("role", fs.Arg(2)).Build()
		if err != nil {
			return err
		}
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA(), key))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, string(signed))
		return err
	}
	return errors.New("usage: devissuer [-issuer URL] [-key FILE] serve | token TENANT ROLE")
}

// loadKey reads the signing key from path, or makes one there.
func loadKey(path string) (jwk.Key, error) {
	if b, err := os.ReadFile(path); !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			return nil, err
		}
		return jwk.ParseKey(b)
	}
	_, raw, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyIDKey, "dev"); err != nil {
		return nil, err
	}
	b, err := json.Marshal(key)
	if err != nil {
		return nil, err
	}
	return key, os.WriteFile(path, b, 0o600)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
