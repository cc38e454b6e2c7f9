package retention

import (
	"context"
	"fmt"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// BenchmarkErase erases a subject with 10,000 entries (2 KiB payloads) that
// share their keys with nobody, and a session of 1,000 entries whose keys
// also hold 9,000 entries of the same subject that must be re-sealed.
// Baseline: reading and decrypting the same 10,000 entries. And a
// subject's 1,000 traces of 10 entries, 9 of which name no subject.
//
//	go test -run '^$' -bench Erase -benchtime 3x ./retention/
func BenchmarkErase(b *testing.B) {
	payload := make([]byte, 2048)
	fill := func(b *testing.B, e *env, subject string, sessions int) []uint64 {
		var idxs []uint64
		for n := 0; n < 10_000; n += 1000 {
			recs := make([]ledger.Record, 1000)
			for i := range recs {
				spanSeq++
				r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, Payload: payload,
					Terms: []ledger.Term{{Field: sessionField, Value: []byte(fmt.Sprint("s", (n+i)%sessions))}}}
				r.TraceID[0], r.TraceID[1], r.TraceID[2] = 9, byte(spanSeq>>8), byte(spanSeq)
				r.SpanID[0], r.SpanID[1], r.SpanID[7] = byte(spanSeq>>16), byte(spanSeq>>8), byte(spanSeq)
				recs[i] = r
			}
			rs, err := e.l.Append(context.Background(), "default", recs)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				idxs = append(idxs, r.Index)
			}
		}
		return idxs
	}
	ctx := context.Background()
	b.Run("subject-10k", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnvB(b)
			fill(b, e, "subject", 1)
			b.StartTimer()
			if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "b", Subject: "subject", LegalBasis: "x", Reason: "y"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("session-1k-reseal-9k", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnvB(b)
			fill(b, e, "subject", 10)
			b.StartTimer()
			er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "b", Session: "s3", LegalBasis: "x", Reason: "y"})
			if err != nil || len(er.Erase) != 1000 {
				b.Fatal(err)
			}
		}
	})
	// Whole traces: 1,000 traces of the subject, each a span naming it and
	// 9 pieces naming no subject (events, children: trace keys).
	b.Run("subject-1k-traces-10k-entries", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnvB(b)
			for n := 0; n < 10_000; n += 1000 {
				recs := make([]ledger.Record, 1000)
				for j := range recs {
					spanSeq++
					r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Payload: payload}
					if j%10 == 0 {
						r.Subject = "subject"
					}
					r.TraceID[0], r.TraceID[1], r.TraceID[2] = 8, byte((n+j)/10>>8), byte((n+j)/10)
					r.SpanID[0], r.SpanID[1], r.SpanID[7] = byte(spanSeq>>16), byte(spanSeq>>8), byte(spanSeq)
					recs[j] = r
				}
				if _, err := e.l.Append(ctx, "default", recs); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			er, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "b", Subject: "subject", LegalBasis: "x", Reason: "y"})
			if err != nil || len(er.Erase) != 10_000 {
				b.Fatalf("Erase = %d entries, %v", len(er.Erase), err)
			}
		}
	})
	b.Run("baseline-read-10k", func(b *testing.B) {
		e := newEnvB(b)
		idxs := fill(b, e, "subject", 1)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for _, x := range idxs {
				if _, err := e.l.GetEntry(ctx, "default", x); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
