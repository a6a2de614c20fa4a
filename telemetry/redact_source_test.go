package telemetry_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoComponentLogsAroundTheRedactor reads the module's non-test Go
// source (examples and CI tools aside) and fails on a log handler or
// writer that would bypass the Redactor: a JSON or text handler built
// anywhere but NewLogger, the log package's printers, or writes to
// stderr outside main.
func TestNoComponentLogsAroundTheRedactor(t *testing.T) {
	allowed := map[string][]string{
		"telemetry/log.go":     {"slog.NewJSONHandler("}, // wrapped in NewRedactor
		"cmd/bulkhead/main.go": {"os.Stderr"},            // handed to the commands, whose logs NewLogger writes
	}
	banned := []string{"slog.NewJSONHandler(", "slog.NewTextHandler(", "log.Print", "log.Fatal", "log.Panic",
		"log.New(", "log.SetOutput(", "os.Stderr"}
	// stdLog finds the standard log package's functions (not slog.New).
	stdLog := regexp.MustCompile(`(^|[^A-Za-z0-9_.])log\.(Print|Fatal|Panic|New\(|SetOutput)`)
	root := filepath.Join("..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "examples" || rel == ".ci" || strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || strings.Contains(rel, "test/") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "//")
			for _, p := range banned {
				hit := strings.Contains(code, p)
				switch {
				case strings.HasPrefix(p, "log."):
					hit = stdLog.MatchString(code) && strings.Contains(code, p)
				case p == "os.Stderr":
					hit = hit && !strings.Contains(code, "telemetry.NewLogger(os.Stderr")
				}
				if hit && !containsString(allowed[rel], p) {
					t.Errorf("%s:%d: %q logs around the Redactor: log through the *slog.Logger you are given (telemetry.NewLogger, server.Server.Logger)", rel, i+1, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
