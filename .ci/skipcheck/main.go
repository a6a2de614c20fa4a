// Command skipcheck reads `go test -json` on stdin, prints the tests'
// output as `go test` would, and exits 1 if any test skipped with a message
// naming one of the variables given as arguments (for example
// BULKHEAD_TEST_POSTGRES): in CI those services run, so such a skip means a
// test silently did not run. It lists the skipped tests. It also exits 1
// if any test or package failed, and prints the output of tests that never
// finished (a timeout), so it is safe without `set -o pipefail`.
//
//	go test -json ./... | go run ./.ci/skipcheck BULKHEAD_TEST_POSTGRES
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go test -json ./... | skipcheck VAR...")
		os.Exit(2)
	}
	vars := os.Args[1:]
	output := map[string]*strings.Builder{} // package + test → its output
	var skipped, other []string
	failed := 0
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // not JSON (e.g. a build error): pass it through
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" || strings.HasPrefix(e.Output, "ok ") || strings.HasPrefix(e.Output, "FAIL") ||
				strings.HasPrefix(e.Output, "--- FAIL") || strings.Contains(e.Output, "[no test files]") {
				fmt.Print(e.Output)
			}
			if e.Test != "" {
				if output[key] == nil {
					output[key] = &strings.Builder{}
				}
				output[key].WriteString(e.Output)
			}
		case "fail":
			failed++
			if e.Test != "" && output[key] != nil {
				fmt.Print(output[key].String())
			}
		case "skip":
			if e.Test == "" || output[key] == nil {
				continue
			}
			out := output[key].String()
			for _, v := range vars {
				if strings.Contains(out, v) {
					skipped = append(skipped, e.Package+" "+e.Test)
					break
				}
			}
			if !strings.Contains(out, "BULKHEAD_TEST_") {
				other = append(other, e.Package+" "+e.Test)
			}
		}
		if e.Action == "pass" || e.Action == "skip" || e.Action == "fail" {
			delete(output, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "skipcheck: read:", err)
		os.Exit(1)
	}
	var unfinished []string
	for key, out := range output {
		if out.Len() > 0 {
			unfinished = append(unfinished, key)
		}
	}
	sort.Strings(unfinished)
	for _, key := range unfinished {
		lines := strings.Split(strings.TrimRight(output[key].String(), "\n"), "\n")
		if len(lines) > 60 {
			lines = append([]string{"…"}, lines[len(lines)-60:]...)
		}
		fmt.Printf("\n%s did not finish; its last output:\n%s\n", key, strings.Join(lines, "\n"))
	}
	if len(other) > 0 {
		sort.Strings(other)
		fmt.Printf("\n%d test(s) skipped for other reasons:\n  %s\n", len(other), strings.Join(other, "\n  "))
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Fprintf(os.Stderr, "\n%d test(s) skipped for want of %s; in CI they must run:\n  %s\n",
			len(skipped), strings.Join(vars, ", "), strings.Join(skipped, "\n  "))
		os.Exit(1)
	}
	if failed > 0 || len(unfinished) > 0 {
		fmt.Fprintf(os.Stderr, "\n%d test(s) or package(s) failed, %d did not finish\n", failed, len(unfinished))
		os.Exit(1)
	}
}
