package otlp_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/tracing/otlp"
	"github.com/bulkhead-dev/bulkhead/tracing/otlptest"
)

// clearEnv unsets every OTEL_* variable Setup reads, for this test.
func TestSetupIsOffUnlessConfigured(t *testing.T) {
	for name, env := range map[string][]string{
		"nothing set":                nil,
		"exporter none":              {"OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"},
		"the SDK disabled":           {"OTEL_SDK_DISABLED", "true", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"},
		"only a sampler":             {"OTEL_TRACES_SAMPLER", "always_on"},
		"only a service name":        {"OTEL_SERVICE_NAME", "x"},
		"exporter none, in capitals": {"OTEL_TRACES_EXPORTER", "NONE", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/v1/traces"},
	} {
		t.Run(name, func(t *testing.T) {
			otlp.ClearEnv(t)
			for i := 0; i+1 < len(env); i += 2 {
				t.Setenv(env[i], env[i+1])
			}
			tp, err := otlp.Setup(context.Background(), otlp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tp.Enabled() || tp.Endpoint() != "" {
				t.Errorf("tracing on (endpoint %q), want off", tp.Endpoint())
			}
			if _, span := tp.Tracer("x").Start(context.Background(), "s"); span.IsRecording() {
				t.Error("a span of the provider that is off records")
			}
			if err := tp.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSetupRefusesWhatItCannotDo(t *testing.T) {
	for name, env := range map[string][]string{
		"a console exporter": {"OTEL_TRACES_EXPORTER", "console"},
		"two exporters":      {"OTEL_TRACES_EXPORTER", "otlp,zipkin"},
		"gRPC":               {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
		"gRPC for traces":    {"OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"},
		"an unknown sampler": {"OTEL_TRACES_EXPORTER", "otlp", "OTEL_TRACES_SAMPLER", "sometimes"},
		// The SDK would sample everything instead, saying so only in a log line.
		"a ratio that is not a number": {"OTEL_TRACES_EXPORTER", "otlp", "OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "a tenth"},
		"a ratio above 1":              {"OTEL_TRACES_EXPORTER", "otlp", "OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "10"},
		"a negative ratio":             {"OTEL_TRACES_EXPORTER", "otlp", "OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "-0.1"},
		// The exporter hands the client encoded protobuf (exporter.go).
		"JSON": {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"},
	} {
		t.Run(name, func(t *testing.T) {
			otlp.ClearEnv(t)
			for i := 0; i+1 < len(env); i += 2 {
				t.Setenv(env[i], env[i+1])
			}
			_, err := otlp.Setup(context.Background(), otlp.Options{})
			if !errors.Is(err, otlp.ErrConfig) || !strings.Contains(err.Error(), "OTEL_") {
				t.Errorf("err %v, want ErrConfig naming the variable", err)
			}
		})
	}
}

func TestSetupExportsToTheConfiguredEndpoint(t *testing.T) {
	otlp.ClearEnv(t)
	rcv := otlptest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "notes")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	tp, err := otlp.Setup(context.Background(), otlp.Options{ServiceName: "bulkhead", ServiceVersion: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	if !tp.Enabled() || tp.Endpoint() != rcv.URL+"/v1/traces" {
		t.Fatalf("enabled %v, endpoint %q", tp.Enabled(), tp.Endpoint())
	}
	_, span := tp.Tracer("test").Start(context.Background(), "one")
	span.End()
	if err := tp.Shutdown(context.Background()); err != nil { // flushes
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 1 || spans[0].Name != "one" {
		t.Fatalf("received %+v, want the one span", spans)
	}
	if r := spans[0].Resource; r["service.name"] != "notes" || r["service.version"] != "v9" {
		t.Errorf("resource %v: want OTEL_SERVICE_NAME over the option, and the version", r)
	}
	// The spans are made by this package, not by OpenTelemetry's SDK, and
	// the resource says so.
	if r := spans[0].Resource; r["telemetry.sdk.name"] != "github.com/bulkhead-dev/bulkhead/tracing/otlp" ||
		r["telemetry.sdk.language"] != "go" || r["telemetry.sdk.version"] == "" {
		t.Errorf("resource %v: want telemetry.sdk.* naming this package", r)
	}
	// After Shutdown, spans are dropped.
	_, late := tp.Tracer("test").Start(context.Background(), "late")
	late.End()
	if late.IsRecording() {
		t.Error("a span started after Shutdown records")
	}
}

func TestEndpointIsLoggedWithoutCredentials(t *testing.T) {
	otlp.ClearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://user:s3cret@collector.example:4318/custom/path?token=s3cret")
	tp, err := otlp.Setup(context.Background(), otlp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	if got := tp.Endpoint(); got != "https://collector.example:4318/custom/path" {
		t.Errorf("endpoint %q, want it without user information or query", got)
	}
}
