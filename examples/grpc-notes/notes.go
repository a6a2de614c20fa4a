package main

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/fleet"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/ingress/catalogauth"
	"github.com/bulkhead-dev/bulkhead/ingress/ingressgrpc"
	"github.com/bulkhead-dev/bulkhead/migrate"
	"github.com/bulkhead-dev/bulkhead/policy"
	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/store/postgres"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// migrationsFS holds the service's own SQL migrations, applied to the
// shard's pooled schema.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// placement: every tenant shares the pooled tables of the one shard, kept
// apart by row-level security.
var placement = store.Placement{Mode: store.Pooled, Shard: "main"}

// Service is the full name of the gRPC service.
const Service = "notes.v1.Notes"

// methods says, for each method, which policy action it is: a method not
// listed here is refused to every credential.
var methods = ingressgrpc.Methods{
	"/" + Service + "/Create": {Action: "record.write", Write: true},
	"/" + Service + "/Get":    {Action: "record.read"},
	"/" + Service + "/List":   {Action: "record.read"},
	"/" + Service + "/Update": {Action: "record.write", Write: true},
	"/" + Service + "/Delete": {Action: "record.delete", Write: true},
}

// Config says where the service's PostgreSQL is.
type Config struct {
	URL      string // serving role: not owner, not superuser, no BYPASSRLS
	AdminURL string // owner role: runs the migrations and holds the catalog
	MaxConns int32  // bounds each connection pool (0: Bulkhead's default)
}

// App is the notes service: a Bulkhead fleet over the PostgreSQL shard,
// with its catalog (tenants and API keys) and its router, which opens
// tenant-scoped transactions, and the ingress gate.
type App struct {
	fleet  *fleet.Fleet
	router *store.Router
	gate   *ingress.Gate
}

// Open connects to PostgreSQL and brings the pooled schema up to the
// latest migration.
func Open(ctx context.Context, cfg Config) (*App, error) {
	ms, err := migrate.LoadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	// RLS means nothing to an owner or superuser: OpenPostgres refuses them
	// as the serving role.
	f, err := fleet.OpenPostgres(ctx, postgres.Shard{Name: placement.Shard, URL: cfg.URL, AdminURL: cfg.AdminURL},
		fleet.OpenOptions{Migrations: ms, MaxConns: cfg.MaxConns})
	if err != nil {
		return nil, err
	}
	a := &App{fleet: f, router: f.Router()}
	// Through Bulkhead's PostgreSQL applier: the pooled schema's tables
	// get row-level security forced and the serving role's grants.
	if _, err := f.Migrate(ctx, fleet.MigrateOptions{}); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	engine, err := policy.New(policy.Options{})
	if err != nil {
		return nil, errors.Join(err, a.Close())
	}
	if a.gate, err = ingress.New(ingress.Config{Authenticator: catalogauth.Keys(f.Catalog()), Policy: engine}); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	return a, nil
}

// Close closes the catalog and the backend.
func (a *App) Close() error { return a.fleet.Close() }

// CreateTenant creates tenant id in pooled mode, unless it exists, and
// returns a new API key's token for it with role (admin, writer, reader).
func (a *App) CreateTenant(ctx context.Context, id tenant.ID, role catalog.Role) (string, error) {
	_, err := a.fleet.Create(ctx, fleet.Spec{ID: id.String(), Isolation: new(string(placement.Mode)), Shard: new(placement.Shard)})
	if err != nil && !errors.Is(err, catalog.ErrExists) {
		return "", err
	}
	_, token, err := a.fleet.Catalog().CreateKey(ctx, id, role, "notes")
	return token, err
}

// Server returns a gRPC server with the notes service behind the gate:
// the interceptors authenticate the "authorization" metadata, put the
// key's tenant in the context and ask the policy, before any handler runs.
func (a *App) Server(opts ...grpc.ServerOption) *grpc.Server {
	srv := grpc.NewServer(append(opts,
		grpc.UnaryInterceptor(ingressgrpc.Unary(a.gate, methods)),
		grpc.StreamInterceptor(ingressgrpc.Stream(a.gate, methods)))...)
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: Service,
		HandlerType: (*any)(nil), // the handlers are closures over a
		Methods: []grpc.MethodDesc{
			unary("Create", a.create), unary("Get", a.get), unary("List", a.list),
			unary("Update", a.update), unary("Delete", a.delete),
		},
	}, a)
	return srv
}

// unary describes a method whose request is a Req, the way protoc's
// generated code does.
func unary[Req proto.Message](name string, h func(context.Context, Req) (proto.Message, error)) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		req := (*new(Req)).ProtoReflect().New().Interface().(Req) // a new message of Req's type
		if err := dec(req); err != nil {
			return nil, err
		}
		call := func(ctx context.Context, req any) (any, error) { return h(ctx, req.(Req)) }
		if icpt == nil {
			return call(ctx, req)
		}
		return icpt(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + Service + "/" + name}, call)
	}}
}

// Note is one note.
type Note struct {
	ID        string
	Text      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Struct is n as the API sends it.
func (n Note) Struct() *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"id":         structpb.NewStringValue(n.ID),
		"text":       structpb.NewStringValue(n.Text),
		"created_at": structpb.NewStringValue(n.CreatedAt.UTC().Format(time.RFC3339Nano)),
		"updated_at": structpb.NewStringValue(n.UpdatedAt.UTC().Format(time.RFC3339Nano)),
	}}
}

const columns = `id::text, text, created_at, updated_at`

func scan(row pgx.Row) (n Note, err error) {
	err = row.Scan(&n.ID, &n.Text, &n.CreatedAt, &n.UpdatedAt)
	return n, err
}

// Create takes {"text": "..."}. tenant_id is the column's default: the
// transaction's tenant.
func (a *App) create(ctx context.Context, req *structpb.Struct) (proto.Message, error) {
	in, err := fields(req, "text")
	if err != nil {
		return nil, err
	}
	var n Note
	err = postgres.Tx(ctx, a.router, func(tx pgx.Tx) (err error) {
		n, err = scan(tx.QueryRow(ctx, `INSERT INTO notes (text) VALUES ($1) RETURNING `+columns, in[0]))
		return err
	})
	return reply(ctx, n.Struct(), err)
}

// Get takes the note's id.
func (a *App) get(ctx context.Context, req *wrapperspb.StringValue) (proto.Message, error) {
	var n Note
	err := postgres.ReadTx(ctx, a.router, func(tx pgx.Tx) (err error) {
		n, err = scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM notes WHERE id = $1`, uuid(req.GetValue())))
		return err
	})
	return reply(ctx, n.Struct(), err)
}

// List answers {"notes": [...]}, oldest first (at most 1000).
func (a *App) list(ctx context.Context, _ *emptypb.Empty) (proto.Message, error) {
	notes := &structpb.ListValue{}
	err := postgres.ReadTx(ctx, a.router, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM notes ORDER BY created_at, id LIMIT 1000`)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Note, error) { return scan(row) })
		for _, n := range all {
			notes.Values = append(notes.Values, structpb.NewStructValue(n.Struct()))
		}
		return err
	})
	return reply(ctx, &structpb.Struct{Fields: map[string]*structpb.Value{"notes": structpb.NewListValue(notes)}}, err)
}

// Update takes {"id": "...", "text": "..."}.
func (a *App) update(ctx context.Context, req *structpb.Struct) (proto.Message, error) {
	in, err := fields(req, "id", "text")
	if err != nil {
		return nil, err
	}
	var n Note
	err = postgres.Tx(ctx, a.router, func(tx pgx.Tx) (err error) {
		n, err = scan(tx.QueryRow(ctx, `UPDATE notes SET text = $2, updated_at = now() WHERE id = $1 RETURNING `+columns,
			uuid(in[0]), in[1]))
		return err
	})
	return reply(ctx, n.Struct(), err)
}

// Delete takes the note's id.
func (a *App) delete(ctx context.Context, req *wrapperspb.StringValue) (proto.Message, error) {
	err := postgres.Tx(ctx, a.router, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM notes WHERE id = $1`, uuid(req.GetValue()))
		if err == nil && tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return err
	})
	return reply(ctx, &emptypb.Empty{}, err)
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// uuid returns id if it is a UUID and nil otherwise, which matches no row:
// a malformed id is as missing as another tenant's.
func uuid(id string) *string {
	if !uuidRE.MatchString(id) {
		return nil
	}
	return &id
}

// fields returns the string fields names of s, in that order. A missing,
// empty or over-long one, and any other field, is InvalidArgument: a
// "tenant" in a request is refused, not ignored.
func fields(s *structpb.Struct, names ...string) ([]string, error) {
	if len(s.GetFields()) != len(names) {
		return nil, status.Errorf(codes.InvalidArgument, "send exactly the fields %q", names)
	}
	out := make([]string, len(names))
	for i, name := range names {
		v := s.GetFields()[name].GetStringValue()
		if v == "" || len(v) > 10000 {
			return nil, status.Errorf(codes.InvalidArgument, "%q must be a string of 1 to 10000 bytes", name)
		}
		out[i] = v
	}
	return out, nil
}

// reply answers m, or the status of err: NotFound for a missing row
// (another tenant's note is as missing as one never made), Internal,
// logged and without details, for anything else.
func reply(ctx context.Context, m proto.Message, err error) (proto.Message, error) {
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, pgx.ErrNoRows):
		return nil, status.Error(codes.NotFound, "no note with this id")
	}
	slog.ErrorContext(ctx, "call failed", "error", err)
	return nil, status.Error(codes.Internal, "internal: the call failed")
}
