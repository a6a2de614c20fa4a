package store

import "testing"

// TestOwnEnvelopeParsesLikeJSON: the fast reading of sealData's layout
// agrees with the JSON decoder, and anything else falls to the decoder.
func TestOwnEnvelopeParsesLikeJSON(t *testing.T) {
	for _, c := range []struct {
		data string
		fast bool
	}{
		{`{"$sealed":"v1","n":12,"c":"AQID-_x","i":["a","b"]}`, true},
		{`{"$sealed":"v1","n":0,"c":"","i":[]}`, true},
		{`{"$sealed":"v1","n":12,"c":"AQID","i":["a"],"x":1}`, false},
		{`{"$sealed":"v1","n":-1,"c":"AQID","i":[]}`, false},
		{`{"$sealed":"v1","n":12,"c":"A\"QID","i":[]}`, false},
		{`{"$sealed":"v1","n":12,"i":[],"c":"AQID"}`, false},
		{`{"n":12,"$sealed":"v1","c":"AQID","i":[]}`, false},
		{`{"$sealed":"v1","n":12,"c":"AQID","i":[]} `, false},
	} {
		fast, ok := parseOwnEnvelope([]byte(c.data))
		slow, sealed := parseEnvelope([]byte(c.data))
		if !sealed {
			t.Fatalf("%s: not sealed", c.data)
		}
		if ok != c.fast {
			t.Errorf("%s: fast path taken = %v, want %v", c.data, ok, c.fast)
		}
		if ok && (fast.Version != slow.Version || fast.Length != slow.Length || fast.Cipher != slow.Cipher) {
			t.Errorf("%s: fast %+v, JSON %+v", c.data, fast, slow)
		}
	}
}
