package recordapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"runtime"
	"strconv"
	"sync"

	"github.com/bulkhead-dev/bulkhead/store"
)

// WriteJSON answers with status and v as JSON (application/json, with
// Content-Length and X-Content-Type-Options: nosniff), as the API answers.
// If v does not encode it writes nothing and returns the error.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeBody(w, status, append(body, '\n'))
	return nil
}

// writeBody writes an encoded JSON body with its headers.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writePage writes a list page as WriteJSON would (byte for byte the same
// body), but encodes it record by record into a pooled buffer and yields
// the processor every store.YieldEvery records, so one tenant's large page
// neither holds a P for a whole scheduler slice while other tenants'
// requests wait nor leaves megabytes of garbage for the collector, whose
// pauses every tenant shares.
func writePage(w http.ResponseWriter, page store.Page) error {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf)
	if err := encodePage(buf, page); err != nil {
		return err
	}
	writeBody(w, http.StatusOK, buf.Bytes())
	return nil
}

// pageBuffers holds page encoding buffers for reuse.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledPage bounds the buffers kept for reuse (a page of 1000 records
// of a few KiB); a bigger one is left to the collector.
const maxPooledPage = 8 << 20

func putPageBuffer(buf *bytes.Buffer) {
	if buf.Cap() > maxPooledPage {
		return
	}
	buf.Reset()
	pageBuffers.Put(buf)
}

// encodePage appends json.Marshal(page) plus a newline to buf, made record
// by record.
func encodePage(buf *bytes.Buffer, page store.Page) error {
	if page.Items == nil {
		body, err := json.Marshal(page)
		buf.Write(body)
		buf.WriteByte('\n')
		return err
	}
	// An Encoder writes into buf without a buffer of its own per value;
	// it escapes HTML like json.Marshal and ends each value with a
	// newline, which is cut.
	enc := json.NewEncoder(buf)
	buf.WriteString(`{"items":[`)
	for i := range page.Items {
		if i > 0 {
			buf.WriteByte(',')
			if i%store.YieldEvery == 0 {
				runtime.Gosched()
			}
		}
		if err := enc.Encode(&page.Items[i]); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString(`],"next_cursor":`)
	if err := enc.Encode(page.NextCursor); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1)
	buf.WriteString("}\n")
	return nil
}
