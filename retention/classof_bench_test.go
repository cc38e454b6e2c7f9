package retention

import (
	"context"
	"testing"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// BenchmarkClassOf classifies one span under a tenant's policy: what the
// append path pays per span (the policy snapshot, and checking that no
// node set a newer one). "log grown": every call finds the log grown since
// the policy was last found current (appends of other requests between
// calls) and looks the next revision up.
//
//	go test -run '^$' -bench ClassOf ./retention/
func BenchmarkClassOf(b *testing.B) {
	ctx := context.Background()
	e := newEnvB(b)
	r := ledger.Record{Kind: format.KindSpan, SubKind: 1, Subject: "s", Payload: []byte("p")}
	r.TraceID[0], r.SpanID[0] = 1, 1
	if _, err := e.l.Append(ctx, "default", []ledger.Record{r}); err != nil {
		b.Fatal(err)
	}
	f := SpanFacts{Kind: 1, Error: true, Attributes: map[string]string{"gen_ai.system": "openai"}}
	if _, err := e.s.ClassOf(ctx, "default", f); err != nil {
		b.Fatal(err)
	}
	for _, grown := range []bool{false, true} {
		name := "log unchanged"
		if grown {
			name = "log grown"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if grown {
					e.s.mu.Lock()
					c := e.s.policies["default"]
					c.at = 0
					e.s.policies["default"] = c
					e.s.mu.Unlock()
				}
				if _, err := e.s.ClassOf(ctx, "default", f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
