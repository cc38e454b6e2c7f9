package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// rangeHeaders splits range.bin into its headers.
func rangeHeaders(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n := int(binary.BigEndian.Uint16(b))
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

func joinHeaders(hs [][]byte) []byte {
	var out []byte
	for _, h := range hs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(h)))
		out = append(out, h...)
	}
	return out
}

// TestTimeRangeBundles: a time-range export carries the range's headers
// and verifies; what a lying server can make of it does not (docs/BUNDLE.md,
// check "time range").
func TestTimeRangeBundles(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.seed(t)                                                                                   // entries 0 v1, 1 v2, 2 t1s1, 3 t2s1, 4 t1s2, 5 t2s2, 6 t1s3, 7 t3s1
	f.append(t, spanSpec{trace: 4, span: 1, kind: v1.SpanKind_SPAN_KIND_TOOL, subject: "dave"}) // 8
	at := func(i uint64) Query {
		h, err := f.l.Header(ctx, "default", i)
		if err != nil {
			t.Fatal(err)
		}
		return Query{From: h.AppendedAt}
	}
	key := f.verifier(t)
	verify := func(b []byte) (*bundle.Report, string) {
		rep := bundle.Verify(bytes.NewReader(b), int64(len(b)), key, nil)
		var out strings.Builder
		rep.Write(&out)
		return rep, out.String()
	}
	fromT3 := at(7) // traces 3 and 4: entries [7, 9), and 6 before them
	toT3 := Query{To: at(7).From}
	tool := Query{From: at(3).From, Kind: uint8(v1.SpanKind_SPAN_KIND_TOOL)}
	for name, q := range map[string]Query{"from": fromT3, "to": toT3, "from and to": {From: at(3).From, To: at(8).From}, "from and kind": tool} {
		b := f.exportQuery(t, q)
		rep, out := verify(b)
		files := unzipAll(t, b)
		if !rep.OK() || files[bundle.RangeFile] == nil {
			t.Errorf("the honest time-range export (%s) does not verify or has no range:\n%s", name, out)
		}
	}
	// Selectors that the headers cannot show complete carry no range and
	// say so.
	b := f.exportQuery(t, Query{From: at(3).From, SubjectID: "alice"})
	if rep, out := verify(b); !rep.OK() || unzipAll(t, b)[bundle.RangeFile] != nil || !strings.Contains(out, "note: the selector has conditions (subject_id) that only payloads show") {
		t.Errorf("a time range with a subject: want no range and a note:\n%s", out)
	}
	if rep, out := verify(f.exportQuery(t, Query{TraceID: traceID(1)})); !rep.OK() || !strings.Contains(out, "note: the selector is not a time range") {
		t.Errorf("a trace export: want a note that it is not a time range:\n%s", out)
	}

	honest := f.exportQuery(t, fromT3)
	rangeFile := unzipAll(t, honest)[bundle.RangeFile]
	hs := rangeHeaders(t, rangeFile)
	if len(hs) != 3 { // entries 6, 7, 8
		t.Fatalf("range.bin of entries [7, 9) holds %d headers, want 3", len(hs))
	}
	editRange := func(edit func(hs [][]byte) [][]byte) func(string, []byte) []byte {
		return func(name string, c []byte) []byte {
			if name == bundle.RangeFile {
				return joinHeaders(edit(slices.Clone(rangeHeaders(t, c))))
			}
			return c
		}
	}
	tool3 := f.exportQuery(t, tool) // trace 1 (entry 6) and trace 4 (entry 8)
	// without8 re-signs b without entry 8 (trace 4's only span), and
	// without trace 4 when unlist.
	without8 := func(b []byte, unlist bool) []byte {
		return f.resign(t, b, func(name string, c []byte) []byte {
			if name == bundle.EntryFile(8) {
				return nil
			}
			return c
		}, nil, func(m *bundle.Manifest) {
			m.Entries = slices.DeleteFunc(m.Entries, func(e bundle.EntryRef) bool { return e.Index == 8 })
			m.Files = slices.DeleteFunc(m.Files, func(fd bundle.FileDigest) bool { return fd.Name == bundle.EntryFile(8) })
			if unlist {
				m.Traces = slices.DeleteFunc(m.Traces, func(s string) bool { return strings.HasPrefix(s, "04") })
			}
		})
	}
	tests := []struct {
		name   string
		bundle []byte
		want   string // the check that must fail
		text   string
	}{
		{"a trace of the range left out", without8(honest, true), bundle.CheckRange, "span entry 8 of trace 04040404040404040404040404040404 lies in the range and satisfies the selector, but the trace is not listed"},
		{"a span of a listed trace left out", without8(honest, false), bundle.CheckRange, "span entry 8 of trace 04040404040404040404040404040404 lies in the range, but the bundle does not hold it"},
		{"a tool span's trace left out of a kind selection", without8(tool3, true), bundle.CheckRange, "span entry 8 of trace 0404"},
		{"the range starts later", f.resign(t, honest, editRange(func(hs [][]byte) [][]byte { return hs[1:] }), nil, func(m *bundle.Manifest) {
			m.Range.First++
		}), bundle.CheckRange, "before the range, was appended at"},
		{"a header changed", f.resign(t, honest, editRange(func(hs [][]byte) [][]byte {
			h := slices.Clone(hs[1])
			h[len(h)-1] ^= 1 // the commitment
			hs[1] = h
			return hs
		}), nil, nil), bundle.CheckRange, "the hash chain breaks at entry 8"},
		{"the last header left out", f.resign(t, honest, editRange(func(hs [][]byte) [][]byte { return hs[:2] }), nil, nil), bundle.CheckRange, "range.bin ends at entry 8"},
		{"a header added", f.resign(t, honest, editRange(func(hs [][]byte) [][]byte { return append(hs, hs[2]) }), nil, nil), bundle.CheckRange, "holds more than the headers"},
		{"the proof of another entry", f.resign(t, honest, nil, nil, func(m *bundle.Manifest) { m.Range.Proof[0][0] ^= 1 }), bundle.CheckRange, "is not proved in the tree"},
		{"no range", f.resign(t, honest, func(name string, c []byte) []byte {
			if name == bundle.RangeFile {
				return nil
			}
			return c
		}, nil, func(m *bundle.Manifest) {
			m.Range = nil
			m.Files = slices.DeleteFunc(m.Files, func(fd bundle.FileDigest) bool { return fd.Name == bundle.RangeFile })
		}), bundle.CheckRange, "holds no range.bin"},
		{"a range with a subject", f.resign(t, honest, nil, nil, func(m *bundle.Manifest) { m.Selector.SubjectID = "dave" }), bundle.CheckManifest, "the selector is not a time range"},
		{"a range in format 2", f.resign(t, honest, nil, nil, func(m *bundle.Manifest) { m.Format = bundle.FormatV2 }), bundle.CheckManifest, "range: not part of veritrace-bundle/v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, out := verify(tt.bundle)
			if !slices.Contains(rep.Failed(), tt.want) || !strings.Contains(out, tt.text) {
				t.Errorf("check %q did not fail naming %q; failed: %v\n%s", tt.want, tt.text, rep.Failed(), out)
			}
		})
	}
	// The same omission in a format 2 bundle verifies, with a note that
	// format 2 does not show the range complete.
	v2 := f.resign(t, honest, func(name string, c []byte) []byte {
		if name == bundle.RangeFile || name == bundle.EntryFile(8) {
			return nil
		}
		return c
	}, nil, func(m *bundle.Manifest) {
		m.Format, m.Range = bundle.FormatV2, nil
		m.Entries = slices.DeleteFunc(m.Entries, func(e bundle.EntryRef) bool { return e.Index == 8 })
		m.Files = slices.DeleteFunc(m.Files, func(fd bundle.FileDigest) bool { return fd.Name == bundle.RangeFile || fd.Name == bundle.EntryFile(8) })
		m.Traces = slices.DeleteFunc(m.Traces, func(s string) bool { return strings.HasPrefix(s, "04") })
	})
	if rep, out := verify(v2); !rep.OK() || !strings.Contains(out, "note: a veritrace-bundle/v2 bundle does not show that its time range is complete") {
		t.Errorf("a format 2 time-range bundle: want it verified with a note:\n%s", out)
	}
}
