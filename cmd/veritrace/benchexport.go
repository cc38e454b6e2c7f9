package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// exportResult is what `veritrace bench --mode export` measured.
type exportResult struct {
	exports, spans, bytes, errors int64
	firstErr                      error
	elapsed                       time.Duration
	p50, p99, max                 time.Duration
}

// benchExport has each client export the selector again and again until
// the deadline (or --requests each), reading every chunk, and counts the
// spans each bundle's manifest lists.
func benchExport(ctx context.Context, cf clientFlags, c benchConfig, sel *v1.TraceQuery) (exportResult, error) {
	client := cf.audit()
	deadline := time.Now().Add(c.duration)
	var (
		res  exportResult
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < c.clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; c.maxReqs == 0 || i < c.maxReqs; i++ {
				if ctx.Err() != nil || time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				spans, n, err := exportOnce(ctx, client, sel)
				d := time.Since(t0)
				mu.Lock()
				switch {
				case err == nil:
					res.exports++
					res.spans += int64(spans)
					res.bytes += n
					lats = append(lats, d)
				case ctx.Err() == nil:
					res.errors++
					if res.firstErr == nil {
						res.firstErr = err
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if len(lats) == 0 {
		return res, fmt.Errorf("bench: no export succeeded: %v", res.firstErr)
	}
	slices.Sort(lats)
	res.p50, res.p99, res.max = lats[len(lats)/2], lats[len(lats)*99/100], lats[len(lats)-1]
	return res, nil
}

// exportOnce exports a bundle into memory and returns how many span
// entries its manifest lists and its size.
func exportOnce(ctx context.Context, client interface {
	ExportBundle(context.Context, *connect.Request[v1.ExportBundleRequest]) (*connect.ServerStreamForClient[v1.ExportBundleResponse], error)
}, sel *v1.TraceQuery) (int, int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	st, err := client.ExportBundle(rctx, connect.NewRequest(&v1.ExportBundleRequest{Selector: sel}))
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	var buf bytes.Buffer
	for st.Receive() {
		buf.Write(st.Msg().GetChunk())
	}
	if err := st.Err(); err != nil {
		return 0, 0, err
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return 0, 0, err
	}
	rc, err := zr.Open(bundle.ManifestFile)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	var m bundle.Manifest
	if err := json.NewDecoder(io.LimitReader(rc, bundle.MaxManifestBytes)).Decode(&m); err != nil {
		return 0, 0, err
	}
	spans := 0
	for _, e := range m.Entries {
		if e.Kind == "span" {
			spans++
		}
	}
	return spans, int64(buf.Len()), nil
}

func (r exportResult) print(w io.Writer, c benchConfig, protocol string) {
	fmt.Fprintf(w, "mode=export clients=%d protocol=%s\n", c.clients, protocol)
	fmt.Fprintf(w, "exports=%d spans=%d bytes=%d errors=%d elapsed=%s\n", r.exports, r.spans, r.bytes, r.errors, r.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "throughput=%.0f spans/s %.1f MB/s  latency p50=%s p99=%s max=%s\n", float64(r.spans)/r.elapsed.Seconds(),
		float64(r.bytes)/r.elapsed.Seconds()/(1<<20), r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.max.Round(time.Millisecond))
}
