package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulkhead-dev/bulkhead/export"
)

// `bulkhead tenant export` and the export half of `tenant offboard`.

// exportResult is what one export wrote.
type exportResult struct {
	export.Summary
	// Last is the position of the last complete record written: resume
	// with --after it.
	Last     string `json:"last,omitempty"`
	complete int64  // bytes up to the end of the last whole line
}

// stream sends GET path with the operator token and returns the response
// once it is a 200; the body is the caller's to close. Unlike do, it
// reads no whole body and sets no overall timeout: an export takes as
// long as it takes.
func (c *client) stream(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	return nil, c.responseError(resp, data, path)
}

// exportTenant streams tenant id's export (after position after) to out,
// printing progress to progress. It fails unless the whole export arrived:
// the server's trailers must match what was written. On a failure the
// result still says what was written completely (Summary up to the last
// whole line, and its position).
func exportTenant(ctx context.Context, c *client, id, after string, out io.Writer, progress io.Writer) (exportResult, error) {
	q := url.Values{}
	if after != "" {
		q.Set(export.AfterParam, after)
	}
	resp, err := c.stream(ctx, tenantPath(id)+"/export", q)
	if err != nil {
		return exportResult{}, err
	}
	defer resp.Body.Close()
	tally, lines := export.NewTally(), &lastLine{}
	p := &progressWriter{w: progress, every: time.Second, next: time.Now().Add(time.Second)}
	_, err = io.Copy(io.MultiWriter(out, tally, lines, p), resp.Body)
	res := exportResult{Summary: tally.Summary(), Last: lines.position()}
	res.complete = res.Bytes - int64(len(lines.cur))
	p.done(res.Summary)
	if err != nil {
		return res, fmt.Errorf("export of %s was cut short after %d complete records: %w", id, res.Records, err)
	}
	if n, sha := resp.Trailer.Get(export.TrailerRecords), resp.Trailer.Get(export.TrailerSHA256); n != fmt.Sprint(res.Records) || sha != res.SHA256 || res.Partial {
		return res, fmt.Errorf("export of %s is incomplete: the server sent %q records (SHA-256 %q), %d arrived (SHA-256 %s)",
			id, n, sha, res.Records, res.SHA256)
	}
	return res, nil
}

// lastLine remembers the last complete line written through it.
type lastLine struct{ cur, last []byte }

func (l *lastLine) Write(p []byte) (int, error) {
	i := bytes.LastIndexByte(p, '\n')
	if i < 0 {
		l.cur = append(l.cur, p...)
		return len(p), nil
	}
	if j := bytes.LastIndexByte(p[:i], '\n'); j >= 0 {
		l.last = append(l.last[:0], p[j+1:i+1]...)
	} else {
		l.last = append(append(l.last[:0], l.cur...), p[:i+1]...)
	}
	l.cur = append(l.cur[:0], p[i+1:]...)
	return len(p), nil
}

// position is the export position of the last complete line, or "".
func (l *lastLine) position() string {
	var rec struct{ ID, Collection string }
	if json.Unmarshal(l.last, &rec) != nil || rec.Collection == "" {
		return ""
	}
	return rec.Collection + "/" + rec.ID
}

// progressWriter prints records and bytes so far at most once per every.
type progressWriter struct {
	w            io.Writer
	every        time.Duration
	next         time.Time
	lines, bytes int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.lines += int64(bytes.Count(b, []byte{'\n'}))
	p.bytes += int64(len(b))
	if now := time.Now(); now.After(p.next) {
		fmt.Fprintf(p.w, "exported %d records, %s\n", p.lines, formatBytes(p.bytes))
		p.next = now.Add(p.every)
	}
	return len(b), nil
}

func (p *progressWriter) done(s export.Summary) {
	fmt.Fprintf(p.w, "exported %d records, %s, SHA-256 %s\n", s.Records, formatBytes(s.Bytes), s.SHA256)
}

func formatBytes(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// createNew creates path for writing; it refuses to replace a file.
func createNew(path, what string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s %s already exists; move it away or choose another path", what, path)
	}
	return f, err
}

func newTenantExportCommand(g *globals, cf *clientFlags) *cobra.Command {
	var output, after string
	cmd := &cobra.Command{
		Use:   "export ID [--output FILE] [--after POSITION]",
		Short: "Export a tenant's records as NDJSON",
		Long: `Export every record of a tenant as NDJSON, one record per line as
GET /v1/collections/{c}/records/{id} returns it, collections in name order and
ids ascending. Progress goes to stderr, then a summary: records, bytes and the
SHA-256 of what was written (--json prints it as JSON, to stderr when the
export itself goes to stdout).

If the export is cut short, the file keeps the records that arrived whole and
the error names the position of the last one: run the command again with
--after POSITION and a new --output, and append that file to the first.
Records written during an export may or may not be in it; suspend the tenant
first for a point-in-time export.`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := export.ParsePosition(after); err != nil {
				return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--after: %w", err)}
			}
			c, err := newClient(g, cf.token)
			if err != nil {
				return err
			}
			out, summary := cmd.OutOrStdout(), cmd.OutOrStdout()
			var f *os.File
			if output != "" && output != "-" {
				if f, err = createNew(output, "output file"); err != nil {
					return err
				}
				defer f.Close()
				out = f
			} else {
				summary = cmd.ErrOrStderr()
			}
			res, err := exportTenant(cmd.Context(), c, args[0], after, out, cmd.ErrOrStderr())
			if err != nil {
				if f != nil { // keep the whole records only
					_ = f.Truncate(res.complete)
				}
				if res.Last != "" {
					err = fmt.Errorf("%w; resume with --after %s", err, res.Last)
				}
				return fmt.Errorf("export tenant %s: %w", args[0], err)
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return fmt.Errorf("export tenant %s: %w", args[0], err)
				}
			}
			if cf.json {
				raw, _ := json.Marshal(res)
				return printJSON(summary, raw)
			}
			return writeFields(summary, [][2]string{{"Tenant", args[0]}, {"Records", fmt.Sprint(res.Records)},
				{"Bytes", fmt.Sprint(res.Bytes)}, {"SHA-256", res.SHA256}, {"Output", orStdout(output)}})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the export to this file, which must not exist (default: stdout)")
	cmd.Flags().StringVar(&after, "after", "", "resume after this record, <collection>/<id> (the last one of an export cut short)")
	markNoEnv(cmd, "output", "after")
	return cmd
}

func orStdout(path string) string {
	if path == "" || path == "-" {
		return "stdout"
	}
	return path
}
