package audit

import (
	"context"
	"testing"

	"github.com/veritrace/veritrace/ledger"
)

// Attack 31, A (work per page): reading a trace page by page must cost
// work in proportion to the trace, not to the trace times its pages. Every
// page of DecisionPathPage reads (GetEntry, which decrypts) every span
// entry of the trace, including those before the page's start and after
// its cap; keep sees each decrypted entry, so its calls count the
// decryptions. A trace of n spans, one span's content a page (cap 1 byte),
// is n pages: n*n decryptions. For 10,000 spans of 1 MiB under the 4 MiB
// default (about 4 a page) that is 2,500 pages x 10,000 MiB = about 24 TiB
// decrypted to read one trace.
func TestAttack31DecisionPathPagesDecryptWholeTraceEachPage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const n = 200
	f.appendTrace(t, traceID(7), n)
	s := f.x.S
	decrypted := 0
	keep := func(*ledger.Entry) bool { decrypted++; return false }
	from, pages := uint64(0), 0
	for {
		pages++
		if pages > n+1 {
			t.Fatalf("pages do not end after %d", pages)
		}
		p, err := s.DecisionPathPage(ctx, "default", traceID(7), from, 1, keep)
		if err != nil {
			t.Fatal(err)
		}
		if p.Next == 0 {
			break
		}
		from = p.Next
	}
	t.Logf("a trace of %d spans, read in %d pages, decrypted %d payloads", n, pages, decrypted)
	if decrypted > 3*n {
		t.Errorf("reading a %d-span trace page by page decrypted %d payloads (%d pages x %d); want at most %d (linear in the trace)", n, decrypted, pages, n, 3*n)
	}
}
