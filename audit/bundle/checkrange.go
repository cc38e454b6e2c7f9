package bundle

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// CheckRange is the check that a time-range bundle holds every trace of
// its range (format 3), or, for other bundles, the note of what they
// cannot show.
const CheckRange = "time range"

// maxHeaderBytes is the size of the largest canonical header: 213 bytes
// plus a tenant of 63 and a retention class of 32 (docs/FORMAT.md §2.1).
const maxHeaderBytes = 213 + 63 + 32

// checkTimeRange runs the time range check (docs/BUNDLE.md). A format 3
// bundle whose selector is a time range carries range.bin: the headers of
// the entries [First, End) and of one entry on each side, linked by the
// hash chain and anchored by an inclusion proof of the last. From them the
// check shows that the range is exactly the entries appended in [from,
// to), that every span in it that satisfies the selector belongs to a
// listed trace, and that every span in it of a listed trace is in the
// bundle. Any other bundle passes with a note saying what it cannot show.
func (v *verifier) checkTimeRange(m *Manifest, cp *format.Checkpoint, results []entryResult) {
	s := &m.Selector
	r := m.Range
	switch {
	case r == nil && s.IsTimeRange() && m.Format == Format:
		v.fail(CheckRange, "the selector is a time range, but the bundle holds no %s to show that it is complete", RangeFile)
		return
	case r == nil && s.IsTimeRange():
		v.note(CheckRange, "a %s bundle does not show that its time range is complete: another trace of the range may match the selector", m.Format)
		return
	case r == nil && (!s.From.IsZero() || !s.To.IsZero()):
		v.note(CheckRange, "the selector has conditions (%s) that only payloads show: the bundle does not show that no other trace of the time range matches it", s.payloadConditions())
		return
	case r == nil:
		v.note(CheckRange, "the selector is not a time range: the bundle does not show that no other trace matches it")
		return
	case cp == nil:
		v.skip(CheckRange, "no valid checkpoint to prove the range against")
		return
	}
	inBundle := make(map[uint64]*entryResult, len(results))
	for i := range results {
		if h := results[i].header; h != nil {
			inBundle[h.Index] = &results[i]
		}
	}
	listed := make(map[string]bool, len(m.Traces))
	for _, t := range m.Traces {
		listed[t] = true
	}
	start, stop := r.First, r.End
	if start > 0 {
		start--
	}
	if stop < m.TreeSize {
		stop++
	}
	if stop-start > MaxRangeHeaders {
		v.fail(CheckRange, "the range holds %d headers, more than the limit of %d", stop-start, MaxRangeHeaders)
		return
	}
	_, rc, err := v.open(RangeFile, MaxRangeFileBytes, true)
	if err != nil {
		v.fail(CheckFiles, "%v", err)
		v.fail(CheckRange, "%v", err)
		return
	}
	defer rc.Close()
	sum := sha256.New()
	in := bufio.NewReaderSize(io.TeeReader(rc, sum), 64<<10)
	var (
		prev     *format.Header
		prevLeaf tlog.Hash
		buf      [maxHeaderBytes]byte
	)
	for i := start; i < stop; i++ {
		var l [2]byte
		if _, err := io.ReadFull(in, l[:]); err != nil {
			v.fail(CheckRange, "%s ends at entry %d; want the headers of entries %d to %d", RangeFile, i, start, stop-1)
			return
		}
		n := int(binary.BigEndian.Uint16(l[:]))
		if n > maxHeaderBytes {
			v.fail(CheckRange, "%s: entry %d: a header of %d bytes", RangeFile, i, n)
			return
		}
		hb := buf[:n]
		if _, err := io.ReadFull(in, hb); err != nil {
			v.fail(CheckRange, "%s ends inside the header of entry %d", RangeFile, i)
			return
		}
		h, err := format.ParseHeader(hb)
		if err != nil {
			v.fail(CheckRange, "%s: entry %d: %v", RangeFile, i, err)
			return
		}
		leaf := format.LeafHash(hb)
		switch {
		case h.Index != i || h.Tenant != m.Tenant:
			v.fail(CheckRange, "%s: the header for entry %d says entry %d of tenant %q", RangeFile, i, h.Index, h.Tenant)
			return
		case i == 0 && h.PrevLeafHash != (tlog.Hash{}):
			v.fail(CheckRange, "%s: entry 0 names a previous leaf", RangeFile)
			return
		case prev != nil && h.PrevLeafHash != prevLeaf:
			v.fail(CheckRange, "%s: the hash chain breaks at entry %d: its previous leaf hash is not entry %d's", RangeFile, i, i-1)
			return
		case prev != nil && h.AppendedAt.Before(prev.AppendedAt):
			v.fail(CheckRange, "%s: entry %d was appended before entry %d; appended_at never decreases along a log", RangeFile, i, i-1)
			return
		}
		if e := inBundle[i]; e != nil && e.leaf != leaf {
			v.fail(CheckRange, "entry %d: the header in %s is not the one of its entry file", i, RangeFile)
		}
		switch {
		case i < r.First: // the entry before the range
			if s.From.IsZero() || !h.AppendedAt.Before(s.From) {
				v.fail(CheckRange, "entry %d, before the range, was appended at %s, not before from", i, h.AppendedAt.UTC().Format(timeFormat))
			}
		case i >= r.End: // the entry after it
			if s.To.IsZero() || h.AppendedAt.Before(s.To) {
				v.fail(CheckRange, "entry %d, after the range, was appended at %s, not at or after to", i, h.AppendedAt.UTC().Format(timeFormat))
			}
		case !s.From.IsZero() && h.AppendedAt.Before(s.From) || !s.To.IsZero() && !h.AppendedAt.Before(s.To):
			v.fail(CheckRange, "entry %d, in the range, was appended at %s, outside [from, to)", i, h.AppendedAt.UTC().Format(timeFormat))
		case h.Kind != format.KindSpan:
			v.pass(CheckRange)
		default:
			trace := hex.EncodeToString(h.TraceID[:])
			switch {
			case listed[trace] && inBundle[i] == nil:
				v.fail(CheckRange, "span entry %d of trace %s lies in the range, but the bundle does not hold it", i, trace)
			case !listed[trace] && s.matchHeader(h):
				v.fail(CheckRange, "span entry %d of trace %s lies in the range and satisfies the selector, but the trace is not listed", i, trace)
			default:
				v.pass(CheckRange)
			}
		}
		prev, prevLeaf = h, leaf
	}
	switch _, err := in.ReadByte(); {
	case err == nil:
		v.fail(CheckRange, "%s holds more than the headers of entries %d to %d", RangeFile, start, stop-1)
		return
	case !errors.Is(err, io.EOF): // the zip reader checks the CRC at the end
		v.fail(CheckRange, "%s: %v", RangeFile, err)
		return
	}
	if want := v.listedSHA256(RangeFile); hex.EncodeToString(sum.Sum(nil)) != want {
		v.fail(CheckFiles, "%s: SHA-256 %x, the manifest says %q", RangeFile, sum.Sum(nil)[:8], short(want))
	} else {
		v.pass(CheckFiles)
	}
	proof := make(tlog.RecordProof, len(r.Proof))
	for i, p := range r.Proof {
		proof[i] = tlog.Hash(p)
	}
	if err := tlog.CheckRecord(proof, int64(cp.Size), cp.Root, int64(stop-1), prevLeaf); err != nil {
		v.fail(CheckRange, "the last header of %s (entry %d) is not proved in the tree of size %d: %v", RangeFile, stop-1, cp.Size, err)
	}
}

// timeFormat is RFC 3339 with nanoseconds, as the manifest writes times.
const timeFormat = "2006-01-02T15:04:05.999999999Z07:00"
