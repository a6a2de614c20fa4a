package policy

import (
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	cedar "github.com/cedar-policy/cedar-go"
)

//go:embed default.cedar
var defaultPolicies []byte

// DefaultPolicies returns the text of the embedded default policy set.
func DefaultPolicies() []byte { return slices.Clone(defaultPolicies) }

// DefaultFile is the name of the default policy file. A file with this name
// in a policy directory replaces the embedded default set.
const DefaultFile = "default.cedar"

// ParseError is a policy file that Cedar could not parse. Line and Column
// are 1-based; zero when Cedar did not say where.
type ParseError struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// cedarPos finds the position in cedar-go's parse errors
// ("parser error: parse error at <input>:3:34 ")": exact got resource want ,").
var cedarPos = regexp.MustCompile(`^(?:parser error: )?parse error at [^:]*:(\d+):(\d+) (.*)$`)

func parseError(file string, err error) *ParseError {
	pe := &ParseError{File: file, Msg: err.Error()}
	if m := cedarPos.FindStringSubmatch(err.Error()); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Column, _ = strconv.Atoi(m[2])
		pe.Msg = m[3]
	}
	return pe
}

// source is one policy file's name and contents.
type source struct {
	name string
	data []byte
}

// snapshot reads the policy files of dir: the embedded default (unless dir
// holds default.cedar) followed by dir's *.cedar files in name order. An
// empty dir gives the default alone.
func snapshot(dir string) ([]source, error) {
	var files []source
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("read policy directory: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".cedar") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed while we were reading; the next poll sees it
				}
				return nil, fmt.Errorf("read policy file: %w", err)
			}
			files = append(files, source{name: e.Name(), data: data})
		}
	}
	if !slices.ContainsFunc(files, func(s source) bool { return s.name == DefaultFile }) {
		files = append([]source{{name: DefaultFile + " (embedded)", data: defaultPolicies}}, files...)
	}
	return files, nil
}

// digest is a content hash of a snapshot.
func digest(files []source) [32]byte {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.data))
		h.Write(f.data)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// policySet is a parsed, immutable policy set.
type policySet struct {
	ps    *cedar.PolicySet
	ids   []string // policy ids in file order
	files []string
	sum   [32]byte
}

// compile parses files into one policy set. Each policy is named by its
// @id annotation, or "<file>:<line>" without one; two policies with the
// same id are an error. Every file's parse error is reported (joined).
func compile(files []source) (*policySet, error) {
	set := &policySet{ps: cedar.NewPolicySet(), sum: digest(files)}
	where := map[string]string{}
	var errs []error
	for _, f := range files {
		set.files = append(set.files, f.name)
		list, err := cedar.NewPolicyListFromBytes(f.name, f.data)
		if err != nil {
			errs = append(errs, parseError(f.name, err))
			continue
		}
		for _, p := range list {
			pos := p.Position()
			loc := fmt.Sprintf("%s:%d", f.name, pos.Line)
			id := string(p.Annotations()["id"])
			if id == "" {
				id = loc
			}
			if prev, dup := where[id]; dup {
				errs = append(errs, &ParseError{File: f.name, Line: pos.Line, Column: pos.Column,
					Msg: fmt.Sprintf("policy id %q is already used at %s (give each policy a unique @id)", id, prev)})
				continue
			}
			where[id] = loc
			set.ids = append(set.ids, id)
			set.ps.Add(cedar.PolicyID(id), p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

// loadDir reads and parses the policy set for dir.
func loadDir(dir string) (*policySet, error) {
	files, err := snapshot(dir)
	if err != nil {
		return nil, err
	}
	return compile(files)
}
