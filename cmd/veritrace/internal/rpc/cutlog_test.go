package rpc

import (
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veritrace/veritrace/policy"
)

// TestCutBodiesLoggedOncePerPeriod: an app opens many requests whose
// bodies stall; each is cut, but the server writes at most one line a
// period (inflightLogEvery) about cuts, counting those since the last
// line, and InflightStats counts every cut.
func TestCutBodiesLoggedOncePerPeriod(t *testing.T) {
	const limit, stalled = 1 << 20, 6
	s := startServerWith(t, Options{MaxRequestBytes: limit, OTLP: OTLPOptions{MaxBytes: limit}, MaxInflightBytes: 2 * stalled * limit,
		MaxKeyInflightBytes: 2 * stalled * limit, BodyTimeout: 200 * time.Millisecond})
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC).UnixNano())
	s.h.s.inflight.now = func() time.Time { return time.Unix(0, clock.Load()) }
	s.tenant(t, "acme")
	token := s.key(t, policy.Ingester, "acme")
	url := s.url + "/veritrace.v1.IngestService/AppendSpans"
	lines := regexp.MustCompile(`body was cut[^\n]*cuts_since_last_line=(\d+)`)

	var stops []func()
	for range stalled {
		stops = append(stops, stallBody(t, http.DefaultClient, url, "application/proto", token))
	}
	waitFor(t, s, "every body cut", func(st InflightStats) bool { return st.BodiesCut == stalled && st.HeldBytes == 0 })
	got := lines.FindAllStringSubmatch(s.logs.String(), -1)
	if len(got) != 1 || got[0][1] != "1" {
		t.Errorf("lines about %d cuts in one period: %q; want one, cuts_since_last_line=1", stalled, got)
	}

	clock.Add(int64(inflightLogEvery)) // the next period
	stops = append(stops, stallBody(t, http.DefaultClient, url, "application/proto", token))
	waitFor(t, s, "the next body cut", func(st InflightStats) bool { return st.BodiesCut == stalled+1 && st.HeldBytes == 0 })
	got = lines.FindAllStringSubmatch(s.logs.String(), -1)
	if len(got) != 2 || got[1][1] != "6" {
		t.Errorf("lines about cuts in two periods: %q; want two, the second with cuts_since_last_line=6 (5 unlogged and its own)", got)
	}
	for _, stop := range stops {
		stop()
	}
}
