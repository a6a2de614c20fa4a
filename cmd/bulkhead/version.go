package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `bulkhead version` prints: the module version, the
// VCS revision the binary was built from, and the Go version that built it.
type versionInfo struct {
	Version   string `json:"version"`            // "(devel)" for a build from a work tree
	Revision  string `json:"revision,omitempty"` // the commit, when the build knew it
	Time      string `json:"time,omitempty"`     // the commit's time
	Modified  bool   `json:"modified,omitempty"` // the work tree had uncommitted changes
	GoVersion string `json:"go_version"`         // the toolchain that built the binary
	Module    string `json:"module"`             // the main module's path
}

// readVersion reads the binary's build information (debug.ReadBuildInfo).
func readVersion() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionInfo{Version: "unknown", GoVersion: "unknown"}
	}
	v := versionInfo{Version: bi.Main.Version, GoVersion: bi.GoVersion, Module: bi.Main.Path}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func newVersionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the VCS revision and the Go version of this binary",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := readVersion()
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%s\n", b)
				return err
			}
			rev := v.Revision
			switch {
			case rev == "":
				rev = "unknown (built without VCS information)"
			case v.Modified:
				rev += " (with uncommitted changes)"
			}
			fields := [][2]string{{"Version", v.Version}, {"Revision", rev}}
			if v.Time != "" {
				fields = append(fields, [2]string{"Committed", v.Time})
			}
			fields = append(fields, [2]string{"Go", v.GoVersion}, [2]string{"Module", v.Module})
			return writeFields(out, fields)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}
