// Command bulkhead runs the Bulkhead server and manages its tenants and
// API keys over the v1 HTTP API.
//
//	bulkhead serve                              # serve ./bulkhead-data on 127.0.0.1:8080
//	bulkhead tenant create acme --isolation database
//	bulkhead key create acme --role writer
//
// Every flag can also be set with an environment variable named
// BULKHEAD_<FLAG> (upper case, '-' becomes '_'), for example BULKHEAD_ADDR
// or BULKHEAD_DATA_DIR; a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Defaults shared by serve and the client commands.
const (
	defaultAddr    = "127.0.0.1:8080"
	defaultDataDir = "./bulkhead-data"
	envPrefix      = "BULKHEAD_"
)

// noEnv names the flags that are never read from the environment: help, and
// yes, because a confirmation left in the environment would confirm every
// later deletion.
var noEnv = map[string]bool{"help": true, "yes": true}

// noEnvAnnotation marks one command's flag that is never read from the
// environment, where noEnv cannot name it because another command's flag
// of the same name is: a variable left for that command (BULKHEAD_TIER for
// `tenant create`) must not turn a look-up (`tenant limits ID`) into a change.
const noEnvAnnotation = "bulkhead-no-env"

// markNoEnv keeps the named flags of cmd from being read from the environment.
func markNoEnv(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.Flags().SetAnnotation(n, noEnvAnnotation, []string{"true"}); err != nil {
			panic(err) // a misspelt flag name: a bug caught by any test run
		}
	}
}

// fromEnv reports whether flag f may be set from the environment.
func fromEnv(f *pflag.Flag) bool {
	return !noEnv[f.Name] && len(f.Annotations[noEnvAnnotation]) == 0
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// lookupEnv reads an environment variable: os.LookupEnv in the binary, a
// map in tests.
type lookupEnv func(key string) (string, bool)

// globals are the flags every command shares.
type globals struct {
	addr    string // serve: listen address; clients: the server's address
	dataDir string // serve: the data directory; clients: where operator.token is
}

// run executes the command line args and returns the process exit code:
// 0 on success, 2 for a usage mistake, 1 for any other error. Errors go to
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, env lookupEnv) int {
	root := newRootCommand(env)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetIn(strings.NewReader("")) // nothing is ever asked interactively
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "bulkhead: %v\n", err)
	if h := flagHint(err); h != "" {
		fmt.Fprintf(stderr, "hint: %s\n", h)
	}
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", u.cmd)
		return 2
	}
	return 1
}

// newRootCommand builds the command tree. Nothing in it is package-global,
// so every run (and every test) gets fresh flags.
func newRootCommand(env lookupEnv) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "bulkhead",
		Short: "Tenant-isolated record service and its control plane",
		Long: `Bulkhead serves a tenant-isolated record API and a tenant-management API.

Run "bulkhead serve" to start a server; the other commands manage its tenants
and keys over HTTP with the operator token. Every flag can also be set with an
environment variable BULKHEAD_<FLAG> (e.g. BULKHEAD_ADDR, BULKHEAD_DATA_DIR,
BULKHEAD_TOKEN); flags on the command line win.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return applyEnv(cmd, env)
		},
	}
	root.PersistentFlags().StringVar(&g.addr, "addr", defaultAddr,
		"server address: where serve listens, and where the other commands connect (host:port or URL)")
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", defaultDataDir,
		"data directory: where serve keeps its files, and where the other commands find operator.token")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd.CommandPath(), err: err}
	})

	root.AddCommand(newServeCommand(g), newTenantCommand(g), newKeyCommand(g), newMigrateCommand(g), newPolicyCommand())
	root.AddCommand(newAgentCommand(g), newGrantCommand(g), newIssuerCommand(g), newAnalystCommand(g))
	root.AddCommand(newAuditCommand(g), newVersionCommand(), newReceiptCommand(g))
	root.AddCommand(newJobCommand(g), newKeyringCommand(g))
	annotateEnv(root)
	return root
}

// usageError is a mistake in the command line: wrong flags or arguments.
type usageError struct {
	cmd string
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exactArgs is cobra.ExactArgs with errors that name the arguments and
// count as usage errors.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		var err error
		switch {
		case len(names) == 0:
			err = fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
		case len(args) == 0:
			err = fmt.Errorf("%s needs %s", cmd.CommandPath(), strings.Join(names, " "))
		case len(args) < len(names):
			err = fmt.Errorf("%s needs %s (missing %s)", cmd.CommandPath(),
				strings.Join(names, " "), strings.Join(names[len(args):], " "))
		default:
			err = fmt.Errorf("%s takes %s, got %d arguments %q", cmd.CommandPath(),
				strings.Join(names, " "), len(args), args)
		}
		return &usageError{cmd: cmd.CommandPath(), err: err}
	}
}

// groupCommand returns a command that only holds subcommands: alone it
// prints its help; with an unknown subcommand it is a usage error (cobra
// would print the help and exit 0).
func groupCommand(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:                        use,
		Short:                      short,
		SuggestionsMinimumDistance: 2,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			err := fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				err = fmt.Errorf("%w (did you mean %s?)", err, strings.Join(s, " or "))
			}
			return &usageError{cmd: cmd.CommandPath(), err: err}
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
}

// envName is the environment variable that backs the flag called name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets every flag of cmd (its own and inherited) that was not given
// on the command line from its BULKHEAD_<FLAG> variable, when that is set
// and not empty.
func applyEnv(cmd *cobra.Command, env lookupEnv) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || !fromEnv(f) {
			return
		}
		v, ok := env(envName(f.Name))
		if !ok || v == "" {
			return
		}
		values := []string{v}
		if f.Value.Type() == "stringArray" {
			values = splitList(v)
		}
		for _, v := range values {
			if err := cmd.Flags().Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("invalid %s: %w (fix or unset it)", envName(f.Name), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return &usageError{cmd: cmd.CommandPath(), err: err}
	}
	return nil
}

// listItem starts an item of a NAME=VALUE list.
var listItem = regexp.MustCompile(`^\s*[a-z][a-z0-9_-]*=`)

// splitList splits the value of a repeatable flag's variable into items:
// "eu=postgres://a,us=postgres://b" gives two. A comma splits only where a
// NAME= follows, so URLs with commas (several hosts) stay whole.
func splitList(v string) []string {
	var out []string
	cur := ""
	for i, part := range strings.Split(v, ",") {
		if i > 0 && !listItem.MatchString(part) {
			cur += "," + part
			continue
		}
		if i > 0 {
			out = append(out, strings.TrimSpace(cur))
		}
		cur = part
	}
	return append(out, strings.TrimSpace(cur))
}

// annotateEnv adds "(env BULKHEAD_<FLAG>)" to the help of every flag that
// applyEnv can set, so --help shows the variables.
func annotateEnv(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		note := func(f *pflag.Flag) {
			if seen[f] || !fromEnv(f) {
				return
			}
			seen[f] = true
			f.Usage += " (env " + envName(f.Name) + ")"
		}
		c.PersistentFlags().VisitAll(note)
		c.Flags().VisitAll(note)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
