package otlp

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// jsonCases are texts whose reading readJSON must share with
// encoding/json: escapes, surrogates, invalid UTF-8, numbers, nesting,
// duplicate keys, and malformed texts.
var jsonCases = []string{
	`[{"role":"user","parts":[{"type":"text","content":"hello"}]}]`,
	`{"a":1,"a":2}`, `{}`, `[]`, `[1,2,3]`, ` [ true , false , null ] `, `{"k":{"n":[{}]}}`,
	`"plain"`, `"é ü 漢字 🙂"`, `"tab\there\n\"q\" \\ \/ \b\f\r"`, `"\u00e9\u6f22\ud83d\ude42"`,
	`"\ud83d"`, `"\ude42"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ud83d\ud83d\ude42"`, `"\u00"`, `"\uZZZZ"`,
	"\"bad \xff utf8 \xe2\x82\"", "\"ctl \x01\"", `"unterminated`, `"\x"`,
	`0`, `-0`, `-1.5e+10`, `1E-3`, `01`, `1.`, `.5`, `-`, `1e`, `1e400`, `-1e400`, `1e-400`, `123456789012345678901234567890`,
	`tru`, `nul`, `truex`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `[1 2]`, `{"a":1}x`, ``, ` `, `[`, `{`, `{"a":`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 3) + `1` + strings.Repeat(`}`, 3),
}

func checkReadJSON(t *testing.T, s string) {
	t.Helper()
	var want any
	wantErr := json.Unmarshal([]byte(s), &want)
	got, ok := readJSON(s)
	if ok != (wantErr == nil) {
		t.Fatalf("readJSON(%q) ok = %v, encoding/json error = %v", s, ok, wantErr)
	}
	if ok && !reflect.DeepEqual(got, want) {
		t.Fatalf("readJSON(%q) = %#v, encoding/json = %#v", s, got, want)
	}
}

func TestReadJSONAsEncodingJSON(t *testing.T) {
	for _, s := range jsonCases {
		checkReadJSON(t, s)
	}
}

// FuzzReadJSON: readJSON reads every text exactly as encoding/json does.
func FuzzReadJSON(f *testing.F) {
	for _, s := range jsonCases {
		if len(s) < 1000 {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) { checkReadJSON(t, s) })
}

// BenchmarkReadJSON: a 2 KiB gen_ai.input.messages value, by
// encoding/json and by readJSON.
func BenchmarkReadJSON(b *testing.B) {
	s := `[{"role":"user","parts":[{"type":"text","content":"` + strings.Repeat("0123456789abcdef", 115) + `"}]}]`
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v any
			if err := json.Unmarshal([]byte(s), &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("readJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := readJSON(s); !ok {
				b.Fatal("not parsed")
			}
		}
	})
}
