package rpc

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestLogText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"entry 42", 100, "entry 42"},
		{"a\nb\tc\x1b[31m", 100, `a\nb\tc\x1b[31m`},
		{`back\slash`, 100, `back\\slash`},
		{"bad \xff utf8", 100, `bad \xff utf8`},
		{"rtl \u202e override", 100, `rtl \u202e override`},
		{"müller", 100, "müller"},
		{"0123456789", 10, "0123456789"},
		{"0123456789a", 10, "0123456..."},
		{"ééééé", 8, "éé..."}, // never cuts inside a character
		{"\n\n\n\n", 8, `\n\n\n\n`},
		{"\n\n\n\n\n", 8, `\n\n...`},
	} {
		if got := logText(tc.in, tc.max); got != tc.want {
			t.Errorf("logText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func FuzzLogText(f *testing.F) {
	f.Add("entry 42\n", 16)
	f.Add("\xff\xfe\u202e", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 3 || max > 1<<12 {
			return
		}
		got := logText(s, max)
		if len(got) > max {
			t.Fatalf("logText(%q, %d) = %q: %d bytes", s, max, got, len(got))
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r != ' ' && !unicode.IsPrint(r) }) {
			t.Fatalf("logText(%q, %d) = %q: not printable", s, max, got)
		}
		if len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || r == utf8.RuneError || r != ' ' && !unicode.IsPrint(r) }) && got != s {
			t.Fatalf("logText(%q, %d) = %q: changed a short printable string", s, max, got)
		}
	})
}
