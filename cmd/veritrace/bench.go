package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
)

// The load generator: N clients append batches of spans to one or more
// tenants (natively over Connect or gRPC, or as OpenTelemetry exports)
// until a duration or a request count is reached, and report spans/s,
// latency, and every failed request by its code. A run with any failed
// request fails. --mode export measures evidence exports instead.

// benchConfig drives the load generator.
type benchConfig struct {
	clients   int
	batches   batchMix
	tenants   []string // clients take them in turn; empty: --tenant, or the key's tenant
	duration  time.Duration
	warmup    time.Duration // requests started before it ends are not counted
	maxReqs   int           // per client; 0: until duration
	spanBytes int
	timeout   time.Duration // per request
	mode      string        // native, otlp-grpc, otlp-http, otlp-http-json, export
	noSubject bool          // spans name no end user
}

// batchMix is a distribution of batch sizes: "100", or weighted sizes
// "1:40,10:30,100:20,1000:10" (size:weight).
type batchMix struct {
	sizes   []int
	weights []int // cumulative
	spec    string
}

func parseBatchMix(s string) (batchMix, error) {
	m := batchMix{spec: s}
	total := 0
	for _, part := range strings.Split(s, ",") {
		size, weight, hasWeight := strings.Cut(strings.TrimSpace(part), ":")
		n, err := strconv.Atoi(size)
		if err != nil || n < 1 || n > ledger.MaxBatch {
			return m, fmt.Errorf("--batch %q: a batch size is 1 to %d", s, ledger.MaxBatch)
		}
		w := 1
		if hasWeight {
			if w, err = strconv.Atoi(weight); err != nil || w < 1 {
				return m, fmt.Errorf("--batch %q: a weight is a whole number from 1", s)
			}
		}
		if slices.Contains(m.sizes, n) {
			return m, fmt.Errorf("--batch %q: size %d given twice", s, n)
		}
		total += w
		m.sizes = append(m.sizes, n)
		m.weights = append(m.weights, total)
	}
	return m, nil
}

// pick returns a batch size drawn from the mix.
func (m batchMix) pick(r *mrand.Rand) int {
	if len(m.sizes) == 1 {
		return m.sizes[0]
	}
	x := r.IntN(m.weights[len(m.weights)-1])
	return m.sizes[sort.SearchInts(m.weights, x+1)]
}

func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	var c benchConfig
	var qf queryFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cf.register(fs)
	qf.register(fs) // the selector of --mode export
	fs.IntVar(&c.clients, "clients", 16, "concurrent clients")
	batch := fs.String("batch", "100", "spans per request: a size, or weighted sizes size:weight,... (e.g. 1:40,10:30,100:20,1000:10)")
	tenants := fs.String("tenants", "", "comma-separated tenants; clients take them in turn (default: --tenant or the key's tenant). The key must be allowed in each")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to run, warm-up included")
	fs.DurationVar(&c.warmup, "warmup", 0, "requests started in this first part of the run are not counted in the figures (their failures are)")
	fs.IntVar(&c.maxReqs, "requests", 0, "stop each client after this many requests (0: run for --duration)")
	fs.IntVar(&c.spanBytes, "span-bytes", 2048, "approximate encoded size of each span")
	fs.DurationVar(&c.timeout, "timeout", time.Minute, "per-request timeout")
	fs.StringVar(&c.mode, "mode", "native", "what to do: send spans natively (AppendSpans), as otlp-grpc, otlp-http (protobuf) or otlp-http-json (OpenTelemetry exports of the same spans), or export the selector given by --subject, --trace, ... (an auditor's key)")
	fs.BoolVar(&c.noSubject, "no-subject", false, "spans name no end user (an app that sets no user.id): each trace's spans are sealed under a key of the trace")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not a loopback address")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	var err error
	if c.batches, err = parseBatchMix(*batch); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	for _, t := range strings.Split(*tenants, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(c.tenants, t) {
			c.tenants = append(c.tenants, t)
		}
	}
	if c.clients < 1 || c.duration <= 0 || c.warmup < 0 || c.warmup >= c.duration || c.spanBytes < 0 || c.timeout <= 0 {
		return errors.New("bench: --clients ≥ 1, --duration > --warmup ≥ 0, --span-bytes ≥ 0 and --timeout > 0 required")
	}
	if !slices.Contains([]string{"native", "otlp-grpc", "otlp-http", "otlp-http-json", "export"}, c.mode) {
		return fmt.Errorf("bench: unknown --mode %q", c.mode)
	}
	if !*allowRemote {
		if err := checkLoopback(cf.addr); err != nil {
			return err
		}
	}
	if c.mode == "export" {
		sel, err := qf.proto()
		if err != nil {
			return err
		}
		res, err := benchExport(ctx, cf, c, sel)
		if err != nil {
			return err
		}
		res.print(stdout, c, map[bool]string{true: "grpc", false: "connect"}[cf.grpc])
		if res.errors > 0 {
			return fmt.Errorf("bench: %d exports failed, first: %v", res.errors, res.firstErr)
		}
		return nil
	}
	res, err := bench(ctx, cf, c)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.Marshal(res.summary(cf, c))
		fmt.Fprintln(stdout, string(b))
	} else {
		res.print(stdout, cf, c)
	}
	if n := res.failed(); n > 0 {
		return fmt.Errorf("bench: %d of %d requests FAILED (%s), first: %v", n, n+res.requests, res.codes(), res.firstErr)
	}
	return nil
}

func checkLoopback(addr string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("bench: %s is not a loopback address; pass --allow-remote to load a remote server", host)
}

// benchResult is what a run measured. Counts and latencies are of the
// requests started after the warm-up; failures are counted whenever they
// happen.
type benchResult struct {
	requests, spans int64
	errors          map[string]int64 // failed requests by code (errorCode)
	firstErr        error
	elapsed         time.Duration // measured part of the run
	lat             []time.Duration
	bySize          map[int][]time.Duration
	byTenant        map[string]int64 // spans
}

// errorCode names a failed request's error: its Connect (or gRPC) code,
// http_NNN for an OTLP/HTTP status, or unknown.
func errorCode(err error) string {
	var he *httpStatusError
	if errors.As(err, &he) {
		return fmt.Sprintf("http_%d", he.status)
	}
	return connect.CodeOf(err).String()
}

func (r *benchResult) failed() int64 {
	var n int64
	for _, c := range r.errors {
		n += c
	}
	return n
}

func (r *benchResult) spansPerSec() float64 { return float64(r.spans) / r.elapsed.Seconds() }

// codes lists the failed requests by code, most first.
func (r *benchResult) codes() string {
	codes := slices.Collect(maps.Keys(r.errors))
	sort.Slice(codes, func(i, j int) bool {
		a, b := codes[i], codes[j]
		return r.errors[a] > r.errors[b] || r.errors[a] == r.errors[b] && a < b
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%s=%d", c, r.errors[c])
	}
	return strings.Join(parts, " ")
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func protocolName(cf clientFlags, c benchConfig) string {
	if c.mode != "native" {
		return c.mode
	}
	if cf.grpc {
		return "grpc"
	}
	return "connect"
}

func (r *benchResult) print(w io.Writer, cf clientFlags, c benchConfig) {
	tenants := strings.Join(c.tenants, ",")
	if tenants == "" {
		tenants = "(the key's)"
	}
	fmt.Fprintf(w, "clients=%d batch=%s span_bytes=%d mode=%s protocol=%s tenants=%s\n", c.clients, c.batches.spec, c.spanBytes, c.mode, protocolName(cf, c), tenants)
	fmt.Fprintf(w, "requests=%d spans=%d errors=%d elapsed=%s\n", r.requests, r.spans, r.failed(), r.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "throughput=%.0f spans/s  latency p50=%s p99=%s max=%s\n", r.spansPerSec(),
		percentile(r.lat, 0.5).Round(time.Microsecond), percentile(r.lat, 0.99).Round(time.Microsecond), percentile(r.lat, 1).Round(time.Microsecond))
	if len(c.batches.sizes) > 1 {
		for _, size := range slices.Sorted(maps.Keys(r.bySize)) {
			l := r.bySize[size]
			fmt.Fprintf(w, "  batch=%-4d requests=%d p50=%s p99=%s\n", size, len(l), percentile(l, 0.5).Round(time.Microsecond), percentile(l, 0.99).Round(time.Microsecond))
		}
	}
	if len(c.tenants) > 1 {
		for _, t := range c.tenants {
			fmt.Fprintf(w, "  tenant=%s spans=%d\n", t, r.byTenant[t])
		}
	}
	if n := r.failed(); n > 0 {
		fmt.Fprintf(w, "FAILED: %d of %d requests failed: %s\nfirst error: %v\n", n, n+r.requests, r.codes(), r.firstErr)
	}
}

// benchSummary is the JSON form of a result (--json).
type benchSummary struct {
	Mode       string           `json:"mode"`
	Protocol   string           `json:"protocol"`
	Clients    int              `json:"clients"`
	Batch      string           `json:"batch"`
	Tenants    []string         `json:"tenants,omitempty"`
	Requests   int64            `json:"requests"`
	Spans      int64            `json:"spans"`
	Errors     int64            `json:"errors"`
	ErrorCodes map[string]int64 `json:"error_codes,omitempty"`
	Elapsed    float64          `json:"elapsed_s"`
	SpansPerS  float64          `json:"spans_per_s"`
	P50ms      float64          `json:"p50_ms"`
	P99ms      float64          `json:"p99_ms"`
	MaxMs      float64          `json:"max_ms"`
}

func (r *benchResult) summary(cf clientFlags, c benchConfig) benchSummary {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	s := benchSummary{Mode: c.mode, Protocol: protocolName(cf, c), Clients: c.clients, Batch: c.batches.spec, Tenants: c.tenants,
		Requests: r.requests, Spans: r.spans, Errors: r.failed(), Elapsed: r.elapsed.Seconds(), SpansPerS: r.spansPerSec(),
		P50ms: ms(percentile(r.lat, 0.5)), P99ms: ms(percentile(r.lat, 0.99)), MaxMs: ms(percentile(r.lat, 1))}
	if len(r.errors) > 0 {
		s.ErrorCodes = r.errors
	}
	return s
}

func bench(ctx context.Context, cf clientFlags, c benchConfig) (*benchResult, error) {
	tenants := c.tenants
	if len(tenants) == 0 {
		tenants = []string{cf.tenant}
	}
	senders := make([]benchRequests, len(tenants))
	for i, t := range tenants {
		tcf := cf
		tcf.tenant = t
		var err error
		if senders[i], err = benchSender(tcf, c.mode); err != nil {
			return nil, err
		}
	}
	// No new request starts after the deadline; requests under way finish,
	// so that the run's end does not show up as failed requests.
	start := time.Now()
	measureFrom, deadline := start.Add(c.warmup), start.Add(c.duration)
	res := &benchResult{errors: map[string]int64{}, bySize: map[int][]time.Duration{}, byTenant: map[string]int64{}}
	var (
		mu      sync.Mutex
		counter atomic.Uint64
		wg      sync.WaitGroup
		lastEnd time.Time
	)
	// Ids of this run start at a random offset: runs against one server
	// never collide.
	var off [4]byte
	rand.Read(off[:])
	counter.Store(uint64(binary.BigEndian.Uint32(off[:])) << 24)
	filler := make([]byte, c.spanBytes*3/4)
	rand.Read(filler)
	text := fmt.Sprintf("%x", filler)[:max(c.spanBytes-200, 0)]
	for w := 0; w < c.clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(w), 0x5eed))
			tenant := w % len(tenants)
			send := senders[tenant]
			fill := send.client(text, c.noSubject)
			for i := 0; c.maxReqs == 0 || i < c.maxReqs; i++ {
				if ctx.Err() != nil || time.Now().After(deadline) {
					break
				}
				size := c.batches.pick(rng)
				first := counter.Add(uint64(size)) - uint64(size) + 1
				req := fill(first, size)
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, c.timeout)
				err := send.send(rctx, req)
				cancel()
				t1 := time.Now()
				mu.Lock()
				switch {
				case err != nil && ctx.Err() != nil:
					// The run was interrupted: not a failure of the server.
				case err != nil:
					res.errors[errorCode(err)]++
					if res.firstErr == nil {
						res.firstErr = err
					}
				case !t0.Before(measureFrom):
					res.requests++
					res.spans += int64(size)
					res.byTenant[tenants[tenant]] += int64(size)
					res.lat = append(res.lat, t1.Sub(t0))
					res.bySize[size] = append(res.bySize[size], t1.Sub(t0))
					if t1.After(lastEnd) {
						lastEnd = t1
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = lastEnd.Sub(measureFrom)
	if res.requests == 0 {
		return nil, fmt.Errorf("bench: no request succeeded after the warm-up (%s): %v", res.codes(), res.firstErr)
	}
	slices.Sort(res.lat)
	for _, l := range res.bySize {
		slices.Sort(l)
	}
	return res, nil
}

var benchRun = func() [8]byte {
	var b [8]byte
	rand.Read(b[:])
	return b
}()

// benchSpan makes a GENERATION span of about the given size with unique ids.
func benchSpan(n uint64, text string) *v1.Span {
	sp := &v1.Span{
		TraceId: make([]byte, 16), SpanId: make([]byte, 8), Name: "chat bench-model", Kind: v1.SpanKind_SPAN_KIND_GENERATION,
		StartTime: &timestamppb.Timestamp{}, EndTime: &timestamppb.Timestamp{},
		Model: &v1.Model{Provider: "bench", RequestModel: "bench-model"},
		Usage: &v1.Usage{InputTokens: 500, OutputTokens: 120},
		Content: &v1.Content{
			InputMessages: []*v1.Message{{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: text}}}}},
		},
	}
	patchBenchSpan(sp, n, time.Now(), false)
	return sp
}

// patchBenchSpan makes a span made by benchSpan span number n, ended at
// now, in place: its ids, times, subject and session.
func patchBenchSpan(sp *v1.Span, n uint64, now time.Time, noSubject bool) {
	putBenchIDs(sp.TraceId, sp.SpanId, n)
	start := now.Add(-time.Second)
	sp.StartTime.Seconds, sp.StartTime.Nanos = start.Unix(), int32(start.Nanosecond())
	sp.EndTime.Seconds, sp.EndTime.Nanos = now.Unix(), int32(now.Nanosecond())
	sp.SubjectId, sp.SessionId = benchSubject(n), benchSession(n)
	if noSubject {
		sp.SubjectId = ""
	}
}

// putBenchIDs writes the trace id (16 bytes) and span id (8 bytes) of
// span n: traces of 8 spans, unique to this run.
func putBenchIDs(trace, span []byte, n uint64) {
	copy(trace, benchRun[:])
	binary.BigEndian.PutUint64(trace[8:], n/8+1)
	binary.BigEndian.PutUint64(span, n)
}

// benchSubjects are the end users of the load: span n is benchSubject(n).
var benchSubjects = func() []string {
	s := make([]string, 1000)
	for i := range s {
		s[i] = "bench-user-" + strconv.Itoa(i)
	}
	return s
}()

func benchSubject(n uint64) string { return benchSubjects[n%uint64(len(benchSubjects))] }

// benchSession is span n's session: one a trace.
func benchSession(n uint64) string { return "session-" + strconv.FormatUint(n/8, 10) }
