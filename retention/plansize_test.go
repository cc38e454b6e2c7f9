package retention

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// heldSubject appends n spans of subject in one trace under a hold of
// that trace whose case reference is the longest the API takes (1,024
// bytes, each escaped by JSON to 6), then one span of the subject in
// another trace, not held. It returns the held trace's id.
func (e *env) heldSubject(tb testing.TB, subject string, n int) {
	tb.Helper()
	ctx := context.Background()
	var trace [16]byte
	binary.BigEndian.PutUint64(trace[:], 0x4e1d)
	if _, _, err := e.s.PlaceHold(ctx, "default", HoldScope{TraceID: hex.EncodeToString(trace[:])}, strings.Repeat("<", 1024), "litigation", "co"); err != nil {
		tb.Fatal(err)
	}
	for done := 0; done < n; {
		recs := make([]ledger.Record, min(ledger.MaxBatch, n-done))
		for i := range recs {
			r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, TraceID: trace, Payload: []byte("held")}
			binary.BigEndian.PutUint64(r.SpanID[:], uint64(done+i+1))
			recs[i] = r
		}
		if _, err := e.l.Append(ctx, "default", recs); err != nil {
			tb.Fatal(err)
		}
		done += len(recs)
	}
	r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, Payload: []byte("erased")}
	r.TraceID[0], r.SpanID[0] = 0xee, 1
	if _, err := e.l.Append(ctx, "default", []ledger.Record{r}); err != nil {
		tb.Fatal(err)
	}
}

// stateSizes returns the largest state record of the tenant and the sum of
// all of them.
func (e *env) stateSizes(tb testing.TB) (name string, largest, total int) {
	tb.Helper()
	names, values, err := e.l.ListState(context.Background(), "default", "")
	if err != nil {
		tb.Fatal(err)
	}
	for i, v := range values {
		total += len(v)
		if len(v) > largest {
			name, largest = names[i], len(v)
		}
	}
	return name, largest, total
}

// maxPlanRecordBytes bounds every state record an erasure or sweep plan
// writes: a chunk of at most format.MaxTombstoneNames held entries with
// the longest case references (JSON-escaped to 6 KiB), and some room.
const maxPlanRecordBytes = format.MaxTombstoneNames*(6*1024+160) + 64<<10

// maxReceiptBytes bounds a receipt of an erasure of up to a few thousand
// entries: it names its tombstone parts, not every entry.
const maxReceiptBytes = 16 << 10

// The plan record (and the receipt inside it) listed every erased and every
// held entry, case references included, with no bound: an erasure or sweep
// naming enough of them could not store its plan and failed for good
// (BenchmarkPlanAtRealSizes shows it at the real limit). Every record a
// plan writes is bounded now, and so is the receipt.
func TestErasurePlanRecordsAreBounded(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.heldSubject(t, "dana", 3*format.MaxTombstoneNames)
	er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "req-big", Subject: "dana", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
	if err != nil {
		t.Fatalf("Erase() = %v", err)
	}
	if len(er.Erase) != 1 || len(er.Held) != 3*format.MaxTombstoneNames {
		t.Errorf("Erase() erased %d and held %d entries, want 1 and %d", len(er.Erase), len(er.Held), 3*format.MaxTombstoneNames)
	}
	if name, largest, total := e.stateSizes(t); largest > maxPlanRecordBytes {
		t.Errorf("state record %q is %d bytes (all state records: %d), want at most %d", name, largest, total, maxPlanRecordBytes)
	}
	if parts := receiptTombstones(t, e, er); len(parts) != 4 {
		t.Errorf("the receipt names %d tombstone parts, want 4", len(parts))
	}
	if len(er.Receipt) > maxReceiptBytes {
		t.Errorf("the receipt is %d bytes, want at most %d", len(er.Receipt), maxReceiptBytes)
	}
	st, err := e.s.ErasureStatus(ctx, "default", "req-big")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Held) != len(er.Held) || st.State != "done" {
		t.Errorf("ErasureStatus: %s, %d held, want done, %d", st.State, len(st.Held), len(er.Held))
	}
}

// BenchmarkPlanAtRealSizes erases a subject of whose entries 22,000 are
// held with the longest case reference: the plan and the receipt inside it
// are then above what one Badger value takes (256 MiB, the value log file
// size). It reports the largest state record, all of them, and the
// receipt. Run with -bench PlanAtRealSizes -benchtime 1x (minutes).
func BenchmarkPlanAtRealSizes(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := newEnvB(b)
		e.heldSubject(b, "dana", 22000)
		er, err := e.s.Erase(context.Background(), "default", ErasureRequest{ID: fmt.Sprint("req-", i), Subject: "dana", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"})
		if err != nil {
			b.Fatalf("Erase() = %v", err)
		}
		_, largest, total := e.stateSizes(b)
		b.ReportMetric(float64(largest), "largest-record-bytes")
		b.ReportMetric(float64(total), "state-bytes")
		b.ReportMetric(float64(len(er.Receipt)), "receipt-bytes")
		b.ReportMetric(float64(len(er.Held)), "held")
	}
}

// receiptTombstones checks an erasure's receipt (format v2) against the
// log: its signature by the log key, each tombstone part it names (index
// and leaf hash, part number, request id) and its counts against what the
// parts name; it returns the parts.
func receiptTombstones(t *testing.T, e *env, er *Erasure) []format.Tombstone {
	t.Helper()
	ctx := context.Background()
	v, _ := note.NewVerifier(e.l.VerifierKey())
	n, err := note.Open([]byte(er.ReceiptSig), note.VerifierList(v))
	if err != nil || n.Text != format.ReceiptSignatureBody(e.l.Origin("default"), sha256.Sum256(er.Receipt)) {
		t.Fatalf("receipt signature: %v", err)
	}
	var rc Receipt
	if err := json.Unmarshal(er.Receipt, &rc); err != nil || rc.Format != ReceiptFormat {
		t.Fatalf("receipt %.200s: %v", er.Receipt, err)
	}
	if len(rc.Tombstones) != len(er.Tombstones) {
		t.Fatalf("the receipt names %d tombstones, the plan %d", len(rc.Tombstones), len(er.Tombstones))
	}
	var out []format.Tombstone
	var erased, held uint64
	for k, rt := range rc.Tombstones {
		en, err := e.l.GetEntry(ctx, "default", rt.Index)
		if err != nil {
			t.Fatal(err)
		}
		var ts format.Tombstone
		if err := json.Unmarshal(en.Payload, &ts); err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(en.LeafHash[:]) != rt.LeafHash || rt.Index != er.Tombstones[k] || ts.RequestID != er.ID || ts.Part != k+1 || ts.Parts != len(rc.Tombstones) {
			t.Fatalf("receipt tombstone %d = %+v; the log has entry %d (leaf %x), part %d of %d of %q", k, rt, rt.Index, en.LeafHash, ts.Part, ts.Parts, ts.RequestID)
		}
		erased, held = erased+uint64(len(ts.Erased)), held+uint64(len(ts.Held))
		out = append(out, ts)
	}
	if erased != rc.ErasedCount || held != rc.HeldCount {
		t.Fatalf("the receipt counts %d erased and %d held; its tombstones name %d and %d", rc.ErasedCount, rc.HeldCount, erased, held)
	}
	if _, err := format.OpenCheckpoint([]byte(rc.Checkpoint), v); err != nil {
		t.Fatalf("receipt checkpoint: %v", err)
	}
	return out
}
