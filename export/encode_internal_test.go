package export

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
)

// TestAppendRecordWritesWhatJSONMarshalWrites: the export's lines must be
// the record API's bytes, whatever the data, ids and times hold.
func TestAppendRecordWritesWhatJSONMarshalWrites(t *testing.T) {
	at := time.Date(2026, 12, 1, 14, 3, 4, 120000000, time.UTC)
	datas := []string{`{}`, `{"a":1}`, `{"a": 1, "b": [1, 2]}`, `{"h":"<b>&amp;</b>"}`, "{\"s\":\"line\u2028sep\u2029x\"}",
		`{"q":"a \"quoted\" \\ back"}`, `{"u":"é ü 😀"}`, `{"n":1e10,"f":-0.5,"t":true,"z":null}`, `{"ws":"a\\tb"}`, "{\n\"x\":1\n}"}
	times := []time.Time{at, at.Truncate(time.Second), at.In(time.FixedZone("x", 3600)), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), {}}
	ids := []string{"a", "Z.~_-9", "x<y", "id&"}
	for _, d := range datas {
		for _, tm := range times {
			for _, id := range ids {
				rec := store.Record{ID: id, Collection: "notes", Data: json.RawMessage(d), Version: 42, CreatedAt: tm, UpdatedAt: at}
				want, werr := json.Marshal(&rec)
				got, gerr := appendRecord(nil, &rec)
				if (werr != nil) != (gerr != nil) {
					t.Fatalf("%s %v %s: errors %v and %v", d, tm, id, werr, gerr)
				}
				if werr == nil && string(got) != string(want)+"\n" {
					t.Errorf("appendRecord = %s\njson.Marshal = %s", got, want)
				}
			}
		}
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	rec := store.Record{ID: "r00000001", Collection: "c1", Version: 3, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(),
		Data: json.RawMessage(`{"n":1,"title":"record 1","tags":["a","b"],"pad":"` + string(make([]byte, 0)) + `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(&rec)
		}
	})
	b.Run("appendRecord", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = appendRecord(buf[:0], &rec)
		}
	})
}
