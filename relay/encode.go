package relay

import (
	"encoding/json"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/store"
)

// encodeEvent appends ev's JSON to buf: the bytes json.Marshal makes of a
// store.Event (TestEncodeEventMatchesJSONMarshal holds it to that), without
// reflection. Strings that would need escaping, and the data, go through
// encoding/json.
func encodeEvent(buf []byte, ev *store.Event) ([]byte, error) {
	if !plain(ev.Collection) || !plain(ev.ID) || !plain(string(ev.Op)) || !plain(ev.Reason) {
		b, err := json.Marshal(ev)
		return append(buf, b...), err
	}
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendInt(buf, ev.Seq, 10)
	buf = append(buf, `,"tenant":"`...)
	buf = append(buf, ev.Tenant.String()...) // a-z, 0-9, '-': nothing to escape
	buf = append(buf, `","collection":"`...)
	buf = append(buf, ev.Collection...)
	buf = append(buf, `","id":"`...)
	buf = append(buf, ev.ID...)
	buf = append(buf, `","op":"`...)
	buf = append(buf, ev.Op...)
	buf = append(buf, `","version":`...)
	buf = strconv.AppendInt(buf, ev.Version, 10)
	buf = append(buf, `,"at":"`...)
	buf, err := ev.At.AppendText(buf) // RFC 3339 with nanoseconds, as MarshalJSON, in place
	if err != nil {
		return buf, err
	}
	buf = append(buf, '"')
	if ev.Reason != "" {
		buf = append(buf, `,"reason":"`...)
		buf = append(buf, ev.Reason...)
		buf = append(buf, '"')
	}
	if len(ev.Data) > 0 {
		d, err := json.Marshal(ev.Data) // compacted and checked, as json.Marshal does
		if err != nil {
			return buf, err
		}
		buf = append(buf, `,"data":`...)
		buf = append(buf, d...)
	}
	if ev.DataUnavailable {
		buf = append(buf, `,"data_unavailable":true`...)
	}
	return append(buf, '}'), nil
}

// plain reports whether s needs no JSON escaping (printable ASCII without
// '"', '\\', '<', '>' and '&', which encoding/json escapes).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
