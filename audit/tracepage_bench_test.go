package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Reading one trace page by page as GetTrace does: 1,000 spans of 16 KiB
// under caps of 64 KiB (about 4 spans a page: 250 pages) and 4 MiB (one
// page). An op is the whole trace, every page.
//
//	go test -run '^$' -bench DecisionPathPages -benchtime 5x ./audit/
func BenchmarkDecisionPathPages(b *testing.B) {
	const n, size = 1000, 16 << 10
	f := newFixture(b)
	trace := traceID(5)
	for done := 0; done < n; {
		k := min(100, n-done)
		recs := make([]ledger.Record, k)
		for i := range recs {
			r := ledger.Record{Kind: format.KindSpan, SubKind: 1, TraceID: trace}
			r.SpanID[0], r.SpanID[1], r.SpanID[7] = byte((done+i)>>8), byte(done+i), 1
			r.Payload, _ = proto.Marshal(&v1.Span{TraceId: trace[:], SpanId: r.SpanID[:], Kind: 1, Name: strings.Repeat("x", size)})
			recs[i] = r
		}
		if _, err := f.l.Append(context.Background(), "default", recs); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	s := f.x.S
	for _, capBytes := range []int{64 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("cap=%dKiB", capBytes>>10), func(b *testing.B) {
			pages := 0
			for b.Loop() {
				for from := uint64(0); ; pages++ {
					p, err := s.DecisionPathPage(context.Background(), "default", trace, from, capBytes)
					if err != nil {
						b.Fatal(err)
					}
					if p.Next == 0 {
						break
					}
					from = p.Next
				}
				pages++
			}
			b.ReportMetric(float64(pages)/float64(b.N), "pages/op")
		})
	}
}
