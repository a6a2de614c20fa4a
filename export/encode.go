package export

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

// appendRecord appends rec as json.Marshal writes it, plus a newline: the
// bytes GET /v1/collections/{c}/records/{id} answers. Records as the store
// keeps them (compact data, ids and collection names that need no
// escaping, years 0 to 9999) are written directly, which spares
// encoding/json's reflection and its second pass over the data; anything
// else goes through json.Marshal.
func appendRecord(b []byte, rec *store.Record) ([]byte, error) {
	if !plain(rec.ID) || !plain(rec.Collection) || !compact(rec.Data) || !jsonTime(rec.CreatedAt) || !jsonTime(rec.UpdatedAt) {
		j, err := json.Marshal(rec)
		return append(append(b, j...), '\n'), err
	}
	b = append(b, `{"id":"`...)
	b = append(b, rec.ID...)
	b = append(b, `","collection":"`...)
	b = append(b, rec.Collection...)
	b = append(b, `","data":`...)
	b = appendHTMLEscaped(b, rec.Data)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, rec.Version, 10)
	b = append(b, `,"created_at":"`...)
	b = rec.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","updated_at":"`...)
	b = rec.UpdatedAt.AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...), nil
}

// plain reports whether s needs no escaping in a JSON string.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// compact reports whether data, valid JSON, has no whitespace outside its
// strings: json.Marshal would then copy it as it is, but for escaping
// (appendHTMLEscaped).
func compact(data []byte) bool {
	if len(data) == 0 {
		return false
	}
	in, esc := false, false
	for _, c := range data {
		switch {
		case esc:
			esc = false
		case in:
			if c == '\\' {
				esc = true
			} else if c == '"' {
				in = false
			}
		case c == '"':
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return !in
}

// jsonTime reports whether t is written by json.Marshal as
// RFC3339Nano (it refuses years outside 0 to 9999).
func jsonTime(t time.Time) bool {
	y := t.Year()
	_, off := t.Zone()
	return y >= 0 && y <= 9999 && off%60 == 0
}

// appendHTMLEscaped appends compact JSON data with <, >, &, U+2028 and
// U+2029 escaped, as json.Marshal does.
func appendHTMLEscaped(b, data []byte) []byte {
	if bytes.IndexAny(data, "<>&") < 0 && bytes.IndexByte(data, 0xe2) < 0 { // U+2028 and U+2029 start with 0xe2
		return append(b, data...)
	}
	var buf bytes.Buffer
	json.HTMLEscape(&buf, data)
	return append(b, buf.Bytes()...)
}
