package otlp

import (
	"encoding/json"
	"math"
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
	got, ok := readJSONWithin(s, math.MaxInt)
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

// TestReadJSONBudget: a text whose values would take far more memory than
// the text (empty objects, small numbers) is not read past the budget; a
// conversation of many short messages is.
func TestReadJSONBudget(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		ok   bool
	}{
		{"4 MiB of empty objects", "[" + strings.Repeat("{},", 4<<20/3) + "{}]", false},
		{"4 MiB of zeros", "[" + strings.Repeat("0,", 2<<20) + "0]", false},
		{"10,000 short messages", "[" + strings.Repeat(`{"role":"user","content":"hi"},`, 10000) + `{"role":"user","content":"hi"}]`, true},
		{"a 4 MiB message", `[{"role":"user","parts":[{"type":"text","content":"` + strings.Repeat("x", 4<<20) + `"}]}]`, true},
	} {
		if _, ok := readJSON(tc.s); ok != tc.ok {
			t.Errorf("%s: readJSON ok = %v, want %v", tc.name, ok, tc.ok)
		}
		if _, ok := readJSONWithin(tc.s, math.MaxInt); !ok {
			t.Errorf("%s: not read without a budget", tc.name)
		}
	}
}

// FuzzReadJSON: readJSON reads every text exactly as encoding/json does
// (without its memory budget, which texts this short never reach).
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
