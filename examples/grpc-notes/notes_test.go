package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/bulkhead-dev/bulkhead/catalog"
	"github.com/bulkhead-dev/bulkhead/ingress"
	"github.com/bulkhead-dev/bulkhead/store/postgres/pgtest"
	"github.com/bulkhead-dev/bulkhead/tenant"
	"github.com/bulkhead-dev/bulkhead/tenanttest"
)

// bearer sends a Bulkhead API key as per-RPC "authorization" metadata.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false for the tests' loopback connection
// only: in production, send keys over TLS.
func (bearer) RequireTransportSecurity() bool { return false }

// world is the service on a real gRPC server on a loopback listener, on a
// throwaway PostgreSQL database, with tenants acme and bravo.
type world struct {
	env         pgtest.Env
	app         *App
	conn        *grpc.ClientConn
	acme, bravo string // writer keys
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := pgtest.New(t) // skips, naming BULKHEAD_TEST_POSTGRES, when it is unset
	ctx := context.Background()
	app, err := Open(ctx, Config{URL: env.ServeURL, AdminURL: env.AdminURL, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := app.Server()
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w := &world{env: env, app: app, conn: conn}
	w.acme = w.tenant(t, "acme", catalog.RoleWriter)
	w.bravo = w.tenant(t, "bravo", catalog.RoleWriter)
	return w
}

// tenant creates tenant id if needed and returns a new key of it with role.
func (w *world) tenant(t *testing.T, id string, role catalog.Role) string {
	t.Helper()
	key, err := w.app.CreateTenant(context.Background(), tenant.MustParse(id), role)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// call invokes method with key as its credential (none if empty) and md
// as extra metadata (name, value pairs).
func (w *world) call(key, method string, req, resp proto.Message, md ...string) error {
	ctx := metadata.AppendToOutgoingContext(context.Background(), md...)
	var opts []grpc.CallOption
	if key != "" {
		opts = append(opts, grpc.PerRPCCredentials(bearer(key)))
	}
	return w.conn.Invoke(ctx, "/"+Service+"/"+method, req, resp, opts...)
}

func noteReq(t *testing.T, fields map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *world) create(t *testing.T, key, text string) *structpb.Struct {
	t.Helper()
	n := &structpb.Struct{}
	if err := w.call(key, "Create", noteReq(t, map[string]any{"text": text}), n); err != nil {
		t.Fatalf("create %q: %v", text, err)
	}
	if n.Fields["text"].GetStringValue() != text || n.Fields["id"].GetStringValue() == "" {
		t.Fatalf("create %q gave %v", text, n)
	}
	return n
}

// texts lists the texts of key's tenant's notes.
func (w *world) texts(key string) ([]string, error) {
	out := &structpb.Struct{}
	err := w.call(key, "List", &emptypb.Empty{}, out)
	var texts []string
	for _, v := range out.Fields["notes"].GetListValue().GetValues() {
		texts = append(texts, v.GetStructValue().Fields["text"].GetStringValue())
	}
	return texts, err
}

func (w *world) list(t *testing.T, key string) []string {
	t.Helper()
	texts, err := w.texts(key)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return texts
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Errorf("%s: %v, want %s", what, err, want)
	}
}

func TestATenantCannotReadOrChangeAnothersNotes(t *testing.T) {
	w := newWorld(t)
	secret := w.create(t, w.acme, "acme's secret")
	w.create(t, w.bravo, "bravo's note")
	id := wrapperspb.String(secret.Fields["id"].GetStringValue())

	if got := w.list(t, w.bravo); len(got) != 1 || got[0] != "bravo's note" {
		t.Fatalf("bravo's list: %q", got)
	}
	missing := w.call(w.bravo, "Get", wrapperspb.String("00000000-0000-4000-8000-000000000000"), &structpb.Struct{})
	wantCode(t, "bravo's get of a note that does not exist", missing, codes.NotFound)
	for _, c := range []struct {
		method string
		req    proto.Message
		resp   proto.Message
	}{
		{"Get", id, &structpb.Struct{}},
		{"Update", noteReq(t, map[string]any{"id": id.Value, "text": "taken over"}), &structpb.Struct{}},
		{"Delete", id, &emptypb.Empty{}},
	} {
		err := w.call(w.bravo, c.method, c.req, c.resp)
		if status.Convert(err).Proto().String() != status.Convert(missing).Proto().String() {
			t.Errorf("bravo's %s of acme's note: %v; want the answer for a missing note: %v", c.method, err, missing)
		}
	}
	wantCode(t, "a create naming a tenant",
		w.call(w.bravo, "Create", noteReq(t, map[string]any{"text": "x", "tenant": "acme"}), &structpb.Struct{}), codes.InvalidArgument)

	got := &structpb.Struct{}
	if err := w.call(w.acme, "Get", id, got); err != nil || !proto.Equal(got, secret) {
		t.Fatalf("acme's note after bravo's attempts: %v %v; want %v", got, err, secret)
	}
	if texts := w.list(t, w.acme); len(texts) != 1 || texts[0] != "acme's secret" {
		t.Fatalf("acme's list: %q", texts)
	}
	// The same calls work for the note's own tenant.
	if err := w.call(w.acme, "Update", noteReq(t, map[string]any{"id": id.Value, "text": "edited"}), got); err != nil ||
		got.Fields["text"].GetStringValue() != "edited" {
		t.Fatalf("acme's update: %v %v", got, err)
	}
	if err := w.call(w.acme, "Delete", id, &emptypb.Empty{}); err != nil {
		t.Fatalf("acme's delete: %v", err)
	}
	wantCode(t, "acme's get of its deleted note", w.call(w.acme, "Get", id, got), codes.NotFound)
}

func TestACallWithoutAValidKeyIsUnauthenticated(t *testing.T) {
	w := newWorld(t)
	w.create(t, w.acme, "acme's note")
	changed := []byte(w.acme)
	changed[len(changed)-1] ^= 1 // still a letter or digit, another one
	for name, key := range map[string]string{
		"no key":                     "",
		"an unknown key":             "bk_0000000000000000_not-a-secret",
		"acme's key with a bit flip": string(changed),
	} {
		wantCode(t, name, w.call(key, "List", &emptypb.Empty{}, &structpb.Struct{}), codes.Unauthenticated)
	}
	for name, md := range map[string][]string{
		"a Basic credential":  {"authorization", "Basic " + w.acme},
		"two credentials":     {"authorization", "Bearer " + w.acme, "authorization", "Bearer " + w.bravo},
		"a key in another md": {"x-api-key", w.acme},
	} {
		wantCode(t, name, w.call("", "List", &emptypb.Empty{}, &structpb.Struct{}, md...), codes.Unauthenticated)
	}
}

func TestForgedActAsIsPermissionDenied(t *testing.T) {
	w := newWorld(t)
	w.create(t, w.bravo, "bravo's note")
	actAs := strings.ToLower(ingress.ActAsHeader)
	wantCode(t, "acme's key acting as bravo: list",
		w.call(w.acme, "List", &emptypb.Empty{}, &structpb.Struct{}, actAs, "bravo"), codes.PermissionDenied)
	wantCode(t, "acme's key acting as bravo: create",
		w.call(w.acme, "Create", noteReq(t, map[string]any{"text": "planted"}), &structpb.Struct{}, actAs, "bravo"), codes.PermissionDenied)
	wantCode(t, "acme's key acting as itself",
		w.call(w.acme, "List", &emptypb.Empty{}, &structpb.Struct{}, actAs, "acme"), codes.PermissionDenied)
	if got := w.list(t, w.bravo); len(got) != 1 || got[0] != "bravo's note" {
		t.Fatalf("bravo's notes: %q", got)
	}
	if got := w.list(t, w.acme); len(got) != 0 {
		t.Fatalf("acme's notes: %q", got)
	}
}

func TestTheKeysRoleDecidesWhatItMayDo(t *testing.T) {
	w := newWorld(t)
	n := w.create(t, w.acme, "acme's note")
	reader := w.tenant(t, "acme", catalog.RoleReader)
	if got := w.list(t, reader); len(got) != 1 {
		t.Fatalf("a reader lists: %q", got)
	}
	wantCode(t, "a reader creates", w.call(reader, "Create", noteReq(t, map[string]any{"text": "x"}), &structpb.Struct{}), codes.PermissionDenied)
	wantCode(t, "a reader deletes", w.call(reader, "Delete", wrapperspb.String(n.Fields["id"].GetStringValue()), &emptypb.Empty{}), codes.PermissionDenied)
}

func TestInjectedSQLInANoteStaysData(t *testing.T) {
	w := newWorld(t)
	w.create(t, w.bravo, "bravo's note")
	payloads := []string{
		`'); DELETE FROM notes; --`,
		`x' OR '1'='1`,
		`'; SELECT set_config('bulkhead.tenant', 'bravo', false); UPDATE notes SET text = 'owned'; --`,
		`$$; DROP TABLE notes; $$`,
		`\'; TRUNCATE notes CASCADE; --`,
	}
	for _, p := range payloads {
		n := w.create(t, w.acme, p)
		got := &structpb.Struct{}
		if err := w.call(w.acme, "Get", wrapperspb.String(n.Fields["id"].GetStringValue()), got); err != nil ||
			got.Fields["text"].GetStringValue() != p {
			t.Fatalf("acme's note %q read back as %v (%v)", p, got, err)
		}
		wantCode(t, "an injection in an id", w.call(w.acme, "Get", wrapperspb.String(p), got), codes.NotFound)
	}
	if got := w.list(t, w.acme); strings.Join(got, "\n") != strings.Join(payloads, "\n") {
		t.Fatalf("acme's notes: %q", got)
	}
	if got := w.list(t, w.bravo); len(got) != 1 || got[0] != "bravo's note" {
		t.Fatalf("bravo's notes: %q", got)
	}
}

// TestTheTableIsUnderForcedRowLevelSecurity checks what the migration got
// from Bulkhead's applier: the database, not only the handlers' SQL, keeps
// tenants apart.
func TestTheTableIsUnderForcedRowLevelSecurity(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, w.env.SuperURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var enabled, forced bool
	var owner string
	err = conn.QueryRow(ctx, `SELECT relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner)
		FROM pg_class WHERE oid = 'bulkhead.notes'::regclass`).Scan(&enabled, &forced, &owner)
	if err != nil {
		t.Fatal(err)
	}
	if !enabled || !forced || owner == w.env.Serving {
		t.Fatalf("notes: row security %v, forced %v, owner %s (serving role %s)", enabled, forced, owner, w.env.Serving)
	}
}

// TestTenanttestFindsNoLeakThroughTheService runs tenanttest's isolation
// check through the gRPC API: the probe calls as the tenant in its
// context, with that tenant's key.
func TestTenanttestFindsNoLeakThroughTheService(t *testing.T) {
	w := newWorld(t)
	keys := map[tenant.ID]string{tenant.MustParse("acme"): w.acme, tenant.MustParse("bravo"): w.bravo}
	keyOf := func(ctx context.Context) string {
		id, _ := tenant.FromContext(ctx)
		return keys[id]
	}
	var written string // the id of the note Write made last
	ctx := context.Background()
	tenanttest.IsolatedBetween(t, tenant.WithID(ctx, tenant.MustParse("acme")), tenant.WithID(ctx, tenant.MustParse("bravo")), tenanttest.Probe{
		Write: func(ctx context.Context) error {
			n := &structpb.Struct{}
			err := w.call(keyOf(ctx), "Create", noteReq(t, map[string]any{"text": "probe"}), n)
			written = n.Fields["id"].GetStringValue()
			return err
		},
		Read: func(ctx context.Context) (any, error) { return w.texts(keyOf(ctx)) },
		Tamper: func(ctx context.Context) error {
			id := wrapperspb.String(written)
			return errors.Join(
				w.call(keyOf(ctx), "Update", noteReq(t, map[string]any{"id": written, "text": "tampered"}), &structpb.Struct{}),
				w.call(keyOf(ctx), "Delete", id, &emptypb.Empty{}))
		},
	})
}
