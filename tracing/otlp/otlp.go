// Package otlp builds an OpenTelemetry TracerProvider that exports spans
// over OTLP/HTTP (protobuf), configured by the standard OTEL_* environment
// variables, and off unless they ask for it. `bulkhead serve` uses it; a
// service that embeds Bulkhead can do the same and pass the provider to
// ingress.Config, store.Config and tracing.Middleware (see package
// tracing).
//
// Tracing is on when OTEL_TRACES_EXPORTER is "otlp", or when it is unset
// and OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set; OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true turn it off.
// The exporter reads the rest: the endpoints, OTEL_EXPORTER_OTLP_HEADERS,
// _TIMEOUT, _COMPRESSION, _CERTIFICATE and their TRACES_ forms (otel's
// OTLP/HTTP client sends); the provider reads OTEL_TRACES_SAMPLER
// (default parentbased_always_on, the SDK's samplers) with
// OTEL_TRACES_SAMPLER_ARG, the OTEL_SPAN_*, OTEL_EVENT_* and OTEL_LINK_*
// limits (as the SDK reads them), OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES; the batching in front of the exporter reads
// OTEL_BSP_SCHEDULE_DELAY, _MAX_EXPORT_BATCH_SIZE, _MAX_QUEUE_SIZE and
// _EXPORT_TIMEOUT.
//
// The provider is Bulkhead's own implementation of the trace API
// (provider.go), lighter than the SDK's on a request's path, and held to
// what the SDK exports by this package's tests. Code of your own can use
// it as any TracerProvider: tp.Tracer("notes").Start(ctx, "step").
package otlp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ErrConfig reports OTEL_* variables that ask for something this package
// cannot do; the message names the variable and what it accepts.
var ErrConfig = errors.New("tracing configuration")

// Options configure Setup.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME (or
	// service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise; default
	// "bulkhead".
	ServiceName string
	// ServiceVersion is service.version, if set.
	ServiceVersion string
}

// Provider is the TracerProvider Setup made: Bulkhead's own
// implementation of the trace API (provider.go), exporting over OTLP/HTTP,
// or a no-op one when tracing is off.
type Provider struct {
	trace.TracerProvider
	tp       *tracerProvider // nil when off
	endpoint string
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p.tp != nil }

// Endpoint returns the URL spans are sent to, without any user
// information or query (which may hold credentials), or "" when off.
func (p *Provider) Endpoint() string { return p.endpoint }

// ForceFlush exports the spans that have ended and not yet been sent.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.tp == nil {
		return nil
	}
	return p.tp.batch.ForceFlush(ctx)
}

// Shutdown exports the spans not yet sent, within ctx, and stops the
// provider: spans started later are dropped. It does nothing when off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.tp == nil {
		return nil
	}
	p.tp.stopped.Store(true)
	return p.tp.batch.Shutdown(ctx)
}

// Setup returns a Provider configured by the OTEL_* environment variables:
// a no-op one (tracing off, no exporter, no cost) unless they configure an
// OTLP exporter. It fails, with an error wrapping ErrConfig that says what
// to change, on an exporter, protocol or sampler it does not support.
func Setup(ctx context.Context, opts Options) (*Provider, error) {
	on, err := enabled()
	if err != nil {
		return nil, err
	}
	if !on {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	if err := checkProtocol(); err != nil {
		return nil, err
	}
	sampler, err := samplerFromEnv()
	if err != nil {
		return nil, err
	}
	name := opts.ServiceName
	if name == "" {
		name = "bulkhead"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	if opts.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", opts.ServiceVersion))
	}
	// Later detectors win: the environment over the defaults.
	res, err := resource.New(ctx, resource.WithAttributes(sdkAttributes()...), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("%w: OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %v (use key=value pairs separated by commas)", ErrConfig, err)
	}
	// otlptracehttp's client reads the OTEL_EXPORTER_OTLP_* variables and
	// sends; our exporter hands it the encoded spans (exporter.go).
	exp, err := newExporter(ctx, otlptracehttp.NewClient(), res)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// The limits come from OTEL_SPAN_*, the batch's sizes and delays from
	// OTEL_BSP_*.
	tp := newTracerProvider(sampler, sdktrace.NewSpanLimits(), newBatcher(exp))
	return &Provider{TracerProvider: tp, tp: tp, endpoint: endpoint()}, nil
}

// enabled reads OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER.
func enabled() (bool, error) {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))); v {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q is not supported (use otlp, or none to turn tracing off)", ErrConfig, v)
	}
}

// checkProtocol refuses the OTLP protocols other than http/protobuf.
func checkProtocol() error {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if v := strings.TrimSpace(os.Getenv(k)); v != "" && v != "http/protobuf" {
			return fmt.Errorf("%w: %s=%q is not supported (use http/protobuf, usually on port 4318)", ErrConfig, k, v)
		}
	}
	return nil
}

// samplerFromEnv returns the SDK's sampler that OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG name (default parentbased_always_on), refusing
// what the SDK would replace with a default and only a log line.
func samplerFromEnv() (sdktrace.Sampler, error) {
	ratio := func() (sdktrace.Sampler, error) {
		arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
		if arg == "" {
			return sdktrace.TraceIDRatioBased(1), nil
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("%w: OTEL_TRACES_SAMPLER_ARG=%q is not a ratio (use a number from 0 to 1, such as 0.1)", ErrConfig, arg)
		}
		return sdktrace.TraceIDRatioBased(v), nil
	}
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER"))); v {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		return ratio()
	case "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(r), nil
	default:
		return nil, fmt.Errorf("%w: OTEL_TRACES_SAMPLER=%q is not supported (use always_on, always_off, traceidratio, "+
			"parentbased_always_on, parentbased_always_off or parentbased_traceidratio)", ErrConfig, v)
	}
}

// endpoint says where the exporter sends spans, as it reads the
// variables, without user information or query.
func endpoint() string {
	if v := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		return redactURL(v, "")
	}
	if v := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		return redactURL(v, "v1/traces")
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"} {
		if strings.EqualFold(os.Getenv(k), "true") {
			return "http://localhost:4318/v1/traces"
		}
	}
	return "https://localhost:4318/v1/traces"
}

func redactURL(raw, suffix string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(an endpoint that is not a URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	if suffix != "" {
		u = u.JoinPath(suffix)
	}
	return u.String()
}

// sdkAttributes name the SDK that makes the spans, this package, as
// OpenTelemetry's semantic conventions ask of an implementation other than
// theirs (telemetry.sdk.name "opentelemetry" would claim their SDK): its
// import path, the language, and the version of the module that holds it
// in this binary ("(devel)" when built from a work tree or in a test).
func sdkAttributes() []attribute.KeyValue {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
			if m.Path == sdkModule && m.Version != "" {
				version = m.Version
				if m.Replace != nil && m.Replace.Version != "" {
					version = m.Replace.Version
				}
				break
			}
		}
	}
	return []attribute.KeyValue{
		attribute.String("telemetry.sdk.name", sdkName),
		attribute.String("telemetry.sdk.language", "go"),
		attribute.String("telemetry.sdk.version", version),
	}
}

// sdkName is this package's import path; sdkModule, its module's.
const (
	sdkName   = sdkModule + "/tracing/otlp"
	sdkModule = "github.com/bulkhead-dev/bulkhead"
)
