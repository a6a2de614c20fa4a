package policy

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-dev/bulkhead/tenant"
)

//go:embed default.cases.json
var defaultCases []byte

// CasesSuffix ends the name of a policy test case file.
const CasesSuffix = ".cases.json"

// Case is one policy test: a request and the decision it must get.
type Case struct {
	Name    string      `json:"name"`
	Request CaseRequest `json:"request"`
	Expect  string      `json:"expect"` // "allow" or "deny"
}

// CaseRequest is a Request as written in a case file; tenants are plain
// strings there.
type CaseRequest struct {
	Principal struct {
		Kind   string `json:"kind"`
		ID     string `json:"id"`
		Tenant string `json:"tenant,omitempty"`
		Role   string `json:"role,omitempty"`
	} `json:"principal"`
	Action     string `json:"action"`
	Tenant     string `json:"tenant,omitempty"`
	Collection string `json:"collection,omitempty"`
	ActAs      bool   `json:"act_as,omitempty"`
	GrantLive  bool   `json:"grant_live,omitempty"`
}

// Result is the outcome of one Case.
type Result struct {
	File     string   `json:"file"`
	Name     string   `json:"name"`
	Expect   string   `json:"expect"`
	Got      string   `json:"got"` // "allow", "deny" or "error"
	OK       bool     `json:"ok"`
	Policies []string `json:"policies,omitempty"` // the determining policies
	Error    string   `json:"error,omitempty"`    // why the request could not be evaluated
}

// Report is what Check found.
type Report struct {
	Files    []string `json:"files"`    // the policy files, in load order
	Policies []string `json:"policies"` // policy ids, in load order
	Cases    []Result `json:"cases"`
}

// Failures returns the cases that did not get their expected decision.
func (r Report) Failures() []Result {
	var out []Result
	for _, c := range r.Cases {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// OK reports whether every case passed.
func (r Report) OK() bool { return len(r.Failures()) == 0 }

// Check parses the policy set for dir (the embedded default plus dir's
// *.cedar files, as New does) and runs the test cases in dir's
// *.cases.json files against it. With dir "", it checks the embedded
// default set against the embedded default cases. A policy or case file
// that does not parse is an error (a *ParseError, or several joined);
// failing cases are not errors, they are in the Report.
func Check(dir string) (Report, error) {
	set, err := loadDir(dir)
	if err != nil {
		return Report{}, err
	}
	e := &Engine{dir: dir}
	e.set.Store(set)
	rep := Report{Files: set.files, Policies: set.ids}

	type caseFile struct {
		name string
		data []byte
	}
	var files []caseFile
	if dir == "" {
		files = append(files, caseFile{"default" + CasesSuffix + " (embedded)", defaultCases})
	} else {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return Report{}, fmt.Errorf("read policy directory: %w", err)
		}
		for _, en := range entries {
			if en.IsDir() || !strings.HasSuffix(en.Name(), CasesSuffix) {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, en.Name()))
			if err != nil {
				return Report{}, fmt.Errorf("read case file: %w", err)
			}
			files = append(files, caseFile{en.Name(), data})
		}
	}
	var errs []error
	for _, f := range files {
		cases, err := ParseCases(f.name, f.data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range cases {
			rep.Cases = append(rep.Cases, e.run(f.name, c))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Report{}, err
	}
	return rep, nil
}

// DefaultCases returns the embedded test cases of the default policy set.
func DefaultCases() []Case {
	cases, err := ParseCases("default"+CasesSuffix, defaultCases)
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return cases
}

// ParseCases parses a case file: a JSON array of cases. Unknown fields, a
// missing name or an expect other than "allow"/"deny" are errors that name
// the file and line.
func ParseCases(file string, data []byte) ([]Case, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cases []Case
	if err := dec.Decode(&cases); err != nil {
		return nil, &ParseError{File: file, Line: lineAt(data, dec.InputOffset()), Msg: err.Error()}
	}
	seen := map[string]bool{}
	for i, c := range cases {
		where := fmt.Sprintf("case %d", i+1)
		switch {
		case c.Name == "":
			return nil, &ParseError{File: file, Msg: where + ": needs a name"}
		case seen[c.Name]:
			return nil, &ParseError{File: file, Msg: fmt.Sprintf("%s: name %q is used twice", where, c.Name)}
		case c.Expect != "allow" && c.Expect != "deny":
			return nil, &ParseError{File: file, Msg: fmt.Sprintf("case %q: expect is %q (want \"allow\" or \"deny\")", c.Name, c.Expect)}
		}
		seen[c.Name] = true
	}
	return cases, nil
}

func lineAt(data []byte, off int64) int {
	off = min(max(off, 0), int64(len(data)))
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// Request converts the case's request to a policy Request.
func (c CaseRequest) Request() (Request, error) {
	r := Request{
		Principal:  Principal{Kind: c.Principal.Kind, ID: c.Principal.ID, Role: c.Principal.Role},
		Action:     c.Action,
		Collection: c.Collection,
		ActAs:      c.ActAs,
		GrantLive:  c.GrantLive,
	}
	var err error
	if c.Principal.Tenant != "" {
		if r.Principal.Tenant, err = tenant.Parse(c.Principal.Tenant); err != nil {
			return Request{}, fmt.Errorf("principal tenant: %w", err)
		}
	}
	if c.Tenant != "" {
		if r.Tenant, err = tenant.Parse(c.Tenant); err != nil {
			return Request{}, fmt.Errorf("tenant: %w", err)
		}
	}
	return r, nil
}

func (e *Engine) run(file string, c Case) Result {
	res := Result{File: file, Name: c.Name, Expect: c.Expect}
	r, err := c.Request.Request()
	if err == nil {
		var d Decision
		d, err = e.Authorize(context.Background(), r)
		res.Got, res.Policies = "deny", d.Policies
		if d.Allow {
			res.Got = "allow"
		}
	}
	if err != nil {
		res.Got, res.Error = "error", err.Error()
	}
	res.OK = res.Got == res.Expect
	return res
}
