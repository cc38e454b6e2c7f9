package bundle

import (
	"bytes"
	"encoding/json"
	"testing"
)

// compactEqual is what equalCompact must report: json.Compact of both,
// compared (the comparison check "decoded content" made before).
func compactEqual(a, b []byte) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

func TestEqualCompact(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{`{"a":1}`, `{"a":1}`, true},
		{`{"a": 1, "b":[1, 2]}`, "{ \"a\":1,\n\t\"b\" : [ 1 ,2 ] }\r\n", true},
		{`{"a":"x y"}`, `{"a":"x  y"}`, false},   // space inside a string counts
		{`{"a":"x y"}`, `{"a":"xy"}`, false},     // and may not be dropped
		{`{"a":"x\" y"}`, `{"a":"x\"y"}`, false}, // an escaped quote does not end it
		{`{"a":"x\\"}`, `{"a":"x\\" }`, true},    // an escaped backslash does not escape the quote
		{`{"a":"x\\", "b":1}`, `{"a":"x\\","b":1}`, true},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{`{"a":1}`, `{"a":1} `, true},
		{`[1,2]`, `[12]`, false},
		{`"\u0041"`, `"A"`, false}, // the same string, spelled differently: Compact keeps spellings
		{``, ` `, true},
		{`{}`, ``, false},
	} {
		if got := equalCompact([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("equalCompact(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := equalCompact([]byte(c.b), []byte(c.a)); got != c.want {
			t.Errorf("equalCompact(%q, %q) = %v, want %v", c.b, c.a, got, c.want)
		}
		if c.a != "" && c.b != "" && compactEqual([]byte(c.a), []byte(c.b)) != c.want {
			t.Errorf("json.Compact disagrees on %q, %q", c.a, c.b)
		}
	}
}

// FuzzEqualCompact checks equalCompact against json.Compact on valid JSON.
func FuzzEqualCompact(f *testing.F) {
	f.Add([]byte(`{"a": "x \" y", "b": [1, 2.5e3, true, null]}`), []byte(`{"a":"x \" y","b":[1,2.5e3,true,null]}`))
	f.Add([]byte(`"a\\"`), []byte(` "a\\" `))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if !json.Valid(a) || !json.Valid(b) {
			return
		}
		if got, want := equalCompact(a, b), compactEqual(a, b); got != want {
			t.Errorf("equalCompact(%q, %q) = %v, json.Compact says %v", a, b, got, want)
		}
	})
}
