package bundle

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestStrictJSON: what the verifier's JSON readers refuse that
// encoding/json would read (docs/BUNDLE.md, "Every JSON file of a bundle").
func TestStrictJSON(t *testing.T) {
	leaf := `"leaf_hash":"` + strings.Repeat("ab", 32) + `"`
	entry := func(members string) string {
		return `{"index":1,"header":"AQ==",` + leaf + `,"inclusion_proof":[]` + members + `}`
	}
	tests := []struct {
		name, json, want string
	}{
		{"the honest form", entry(`,"erased":true`), ""},
		{"null for a string", entry(`,"undecodable":null`), "want a string"},
		{"null for an integer", strings.Replace(entry(""), `"index":1`, `"index":null`, 1), "want an unsigned integer"},
		{"null for the proof", strings.Replace(entry(""), `"inclusion_proof":[]`, `"inclusion_proof":null`, 1), "want an array"},
		{"erased false", entry(`,"erased":false`), "want true"},
		{"a member in upper case", strings.Replace(entry(""), `"index"`, `"INDEX"`, 1), `unknown field "INDEX"`},
		{"a member twice", entry(`,"index":1`), `member "index" appears twice`},
		{"a member missing", `{"index":1,"header":"AQ==",` + leaf + `}`, `"inclusion_proof" is missing`},
		{"invalid UTF-8", entry(`,"undecodable":"a` + "\xff" + `"`), "invalid UTF-8"},
		{"an unpaired surrogate", entry(`,"undecodable":"\ud800x"`), "unpaired surrogate"},
		{"a reversed pair", entry(`,"undecodable":"\udc00\ud800"`), "unpaired surrogate"},
		{"a pair", entry(`,"undecodable":"\ud83d\ude00"`), ""},
		{"an integer past 2^53-1", strings.Replace(entry(""), `"index":1`, `"index":9007199254740992`, 1), "more than 9007199254740991"},
		{"the largest integer", strings.Replace(entry(""), `"index":1`, `"index":9007199254740991`, 1), ""},
		{"a fraction", strings.Replace(entry(""), `"index":1`, `"index":1.0`, 1), "want an unsigned integer"},
		{"base64 with bits set past the end", strings.Replace(entry(""), `"header":"AQ=="`, `"header":"AR=="`, 1), "illegal base64"},
		{"base64 with a line break", strings.Replace(entry(""), `"header":"AQ=="`, `"header":"AQ\n=="`, 1), "a line break in base64"},
		{"a member twice inside decoded", entry(`,"decoded":{"a":{"b":1,"b":2}}`), `member "b" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Entry
			err := parseEntry([]byte(tt.json), &e)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("parseEntry(%q) = %v, want an error containing %q", tt.json, err, tt.want)
			}
		})
	}
}

// TestParseTombstone: members by their exact names, once each; members
// the verifier does not read are ignored.
func TestParseTombstone(t *testing.T) {
	leaf := strings.Repeat("0f", 32)
	tests := []struct {
		name, json string
		erased     int // entries named, or -1 for an error
	}{
		{"honest", `{"reason":"erasure","request_id":"r","erased":[{"index":4,"leaf_hash":"` + leaf + `"}],"part":1,"parts":2}`, 1},
		{"erased null", `{"reason":"expiry","request_id":"r","erased":null}`, 0},
		{"a later member in another case names nothing", `{"reason":"erasure","erased":[],"Erased":[{"index":4,"leaf_hash":"` + leaf + `"}]}`, 0},
		{"a folded name names nothing", `{"reason":"erasure","erased":[],"ſrased":[{"index":4,"leaf_hash":"` + leaf + `"}]}`, 0},
		{"members added later are ignored", `{"reason":"erasure","erased":[{"index":4,"leaf_hash":"` + leaf + `","why":"x"}],"new":{"a":[1]}}`, 1},
		{"erased twice", `{"reason":"erasure","erased":[],"erased":[{"index":4,"leaf_hash":"` + leaf + `"}]}`, -1},
		{"a duplicate inside an ignored member", `{"reason":"erasure","erased":[],"held":[{"index":1,"index":2}]}`, -1},
		{"reason missing", `{"erased":[]}`, -1},
		{"reason not a string", `{"reason":1,"erased":[]}`, -1},
		{"an item without its leaf hash", `{"reason":"erasure","erased":[{"index":4}]}`, -1},
		{"not an object", `[]`, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := parseTombstone([]byte(tt.json))
			switch {
			case tt.erased < 0 && err == nil:
				t.Errorf("parseTombstone(%q) = %+v, want an error", tt.json, ts)
			case tt.erased >= 0 && err != nil:
				t.Errorf("parseTombstone(%q) = %v", tt.json, err)
			case tt.erased >= 0 && len(ts.Erased) != tt.erased:
				t.Errorf("parseTombstone(%q) names %d entries, want %d", tt.json, len(ts.Erased), tt.erased)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time // zero: refused
	}{
		{"2026-11-21T09:00:05Z", time.Date(2026, 11, 21, 9, 0, 5, 0, time.UTC)},
		{"2026-11-21T09:00:05.000000001Z", time.Date(2026, 11, 21, 9, 0, 5, 1, time.UTC)},
		{"2026-11-21T09:00:05.5+01:30", time.Date(2026, 11, 21, 7, 30, 5, 500_000_000, time.UTC)},
		{"2026-11-21T00:00:00-23:59", time.Date(2026, 11, 21, 23, 59, 0, 0, time.UTC)},
		{"2024-02-29T00:00:00Z", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"0000-01-01T00:00:00Z", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2025-02-29T00:00:00Z", time.Time{}},
		{"2026-11-21T24:00:00Z", time.Time{}},
		{"2026-11-21T23:59:60Z", time.Time{}},
		{"2026-11-21t09:00:05Z", time.Time{}},
		{"2026-11-21T09:00:05z", time.Time{}},
		{"2026-11-21 09:00:05Z", time.Time{}},
		{"2026-11-21T09:00:05", time.Time{}},
		{"2026-11-21T09:00:05.Z", time.Time{}},
		{"2026-11-21T09:00:05.1234567890Z", time.Time{}},
		{"2026-11-21T09:00:05+0100", time.Time{}},
		{"2026-11-21T09:00:05+24:00", time.Time{}},
		{"2026-1-21T09:00:05Z", time.Time{}},
		{"+2026-11-21T09:00:05Z", time.Time{}},
		{"2026-11-21T09:00:05Z ", time.Time{}},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in)
		if tt.want.IsZero() {
			if err == nil {
				t.Errorf("ParseTime(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestHasControl compares the eight-bytes-at-a-time test with a byte loop
// for every byte value at every position of strings of 1 to 17 bytes.
func TestHasControl(t *testing.T) {
	for n := 1; n <= 17; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				s := bytes.Repeat([]byte{'a'}, n)
				s[pos] = byte(c)
				if got, want := hasControl(s), c < 0x20; got != want {
					t.Fatalf("hasControl(%q) = %v, want %v", s, got, want)
				}
				// A high byte beside it must not hide it or stand for it.
				if pos+1 < n {
					s[pos+1] = 0xff
					if got, want := hasControl(s), c < 0x20; got != want {
						t.Fatalf("hasControl(%q) = %v, want %v", s, got, want)
					}
				}
			}
		}
	}
}
