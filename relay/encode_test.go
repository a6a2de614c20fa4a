package relay

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/store"
	"github.com/bulkhead-dev/bulkhead/tenant"
)

// TestEncodeEventMatchesJSONMarshal: the relay's encoder writes exactly
// json.Marshal's bytes for events of every shape, including strings that
// need escaping and a field added to store.Event later (it would differ).
func TestEncodeEventMatchesJSONMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"orders", "a.b~c-d_e", "x<y>&z", "quote\"back\\slash", "tab\tnl\n", "ünïcode", "retention", ""}
	datas := []json.RawMessage{nil, json.RawMessage(`{"a": 1, "b":[1, 2]}`), json.RawMessage(`{"html":"<b>&"}`)}
	for i := range 2000 {
		ev := store.Event{
			Seq: rng.Int64N(1 << 40), Tenant: tenant.MustParse("acme-2"), Collection: strs[rng.IntN(len(strs))],
			ID: strs[rng.IntN(len(strs))], Op: store.Op(strs[rng.IntN(len(strs))]), Version: rng.Int64N(1000),
			At:     time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("x", rng.IntN(3)*3600)),
			Reason: strs[rng.IntN(len(strs))], Data: datas[rng.IntN(len(datas))], DataUnavailable: rng.IntN(2) == 0,
		}
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeEvent(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
