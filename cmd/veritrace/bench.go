package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// benchConfig drives the load generator.
type benchConfig struct {
	clients   int
	batch     int
	duration  time.Duration
	maxReqs   int // per client; 0: until duration
	spanBytes int
	mode      string // native, otlp-grpc, otlp-http, otlp-http-json
	noSubject bool   // spans name no end user
}

func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	var c benchConfig
	var qf queryFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cf.register(fs)
	qf.register(fs) // the selector of --mode export
	fs.IntVar(&c.clients, "clients", 16, "concurrent clients")
	fs.IntVar(&c.batch, "batch", 100, "spans per AppendSpans request")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&c.maxReqs, "requests", 0, "stop each client after this many requests (0: run for --duration)")
	fs.IntVar(&c.spanBytes, "span-bytes", 2048, "approximate encoded size of each span")
	fs.StringVar(&c.mode, "mode", "native", "what to do: send spans natively (AppendSpans), as otlp-grpc, otlp-http (protobuf) or otlp-http-json (OpenTelemetry exports of the same spans), or export the selector given by --subject, --trace, ... (an auditor's key)")
	fs.BoolVar(&c.noSubject, "no-subject", false, "spans name no end user (an app that sets no user.id): each trace's spans are sealed under a key of the trace")
	allowRemote := fs.Bool("allow-remote", false, "allow a target that is not a loopback address")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	if c.clients < 1 || c.batch < 1 || c.batch > 1000 || c.duration <= 0 || c.spanBytes < 0 {
		return errors.New("bench: --clients ≥ 1, --batch 1..1000, --duration > 0 and --span-bytes ≥ 0 required")
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
	protocol := c.mode
	if c.mode == "native" {
		protocol = map[bool]string{true: "grpc", false: "connect"}[cf.grpc]
	}
	fmt.Fprintf(stdout, "clients=%d batch=%d span_bytes=%d mode=%s protocol=%s\n", c.clients, c.batch, c.spanBytes, c.mode, protocol)
	fmt.Fprintf(stdout, "requests=%d spans=%d errors=%d elapsed=%s\n", res.requests, res.spans, res.errors, res.elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "throughput=%.0f spans/s  latency p50=%s p99=%s max=%s\n", res.spansPerSec(), res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.max.Round(time.Microsecond))
	if res.errors > 0 {
		return fmt.Errorf("bench: %d requests failed, first: %v", res.errors, res.firstErr)
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

type benchResult struct {
	requests, spans, errors int64
	firstErr                error
	elapsed                 time.Duration
	p50, p99, max           time.Duration
}

func (r benchResult) spansPerSec() float64 { return float64(r.spans) / r.elapsed.Seconds() }

func bench(ctx context.Context, cf clientFlags, c benchConfig) (benchResult, error) {
	send, err := benchSender(cf, c.mode)
	if build := send.build; c.noSubject && err == nil {
		send.build = func(first uint64, n int, text string) any { return withoutSubjects(build(first, n, text)) }
	}
	if err != nil {
		return benchResult{}, err
	}
	// No new request starts after the deadline; requests under way finish,
	// so that the run's end does not show up as failed requests.
	deadline := time.Now().Add(c.duration)
	var (
		res     benchResult
		mu      sync.Mutex
		lats    []time.Duration
		counter atomic.Uint64
		wg      sync.WaitGroup
	)
	// Ids of this run start at a random offset: runs against one server
	// never collide.
	var off [4]byte
	rand.Read(off[:])
	counter.Store(uint64(binary.BigEndian.Uint32(off[:])) << 24)
	filler := make([]byte, c.spanBytes*3/4)
	rand.Read(filler)
	text := fmt.Sprintf("%x", filler)[:max(c.spanBytes-200, 0)]
	start := time.Now()
	for w := 0; w < c.clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for i := 0; c.maxReqs == 0 || i < c.maxReqs; i++ {
				if ctx.Err() != nil || time.Now().After(deadline) {
					break
				}
				first := counter.Add(uint64(c.batch)) - uint64(c.batch) + 1
				req := send.build(first, c.batch, text)
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				err := send.send(rctx, req)
				cancel()
				d := time.Since(t0)
				mu.Lock()
				switch {
				case err == nil:
					res.requests++
					res.spans += int64(c.batch)
					local = append(local, d)
				case ctx.Err() == nil:
					res.errors++
					if res.firstErr == nil {
						res.firstErr = err
					}
				}
				mu.Unlock()
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if len(lats) == 0 {
		return res, fmt.Errorf("bench: no request succeeded: %v", res.firstErr)
	}
	slices.Sort(lats)
	res.p50 = lats[len(lats)/2]
	res.p99 = lats[len(lats)*99/100]
	res.max = lats[len(lats)-1]
	return res, nil
}

var benchRun = func() [8]byte {
	var b [8]byte
	rand.Read(b[:])
	return b
}()

// benchSpan makes a GENERATION span of about the given size with unique ids.
func benchSpan(n uint64, text string) *v1.Span {
	trace := make([]byte, 16)
	copy(trace, benchRun[:])
	binary.BigEndian.PutUint64(trace[8:], n/8+1)
	id := binary.BigEndian.AppendUint64(nil, n)
	now := time.Now()
	return &v1.Span{
		TraceId: trace, SpanId: id, Name: "chat bench-model", Kind: v1.SpanKind_SPAN_KIND_GENERATION,
		StartTime: timestamppb.New(now.Add(-time.Second)), EndTime: timestamppb.New(now),
		SubjectId: fmt.Sprintf("bench-user-%d", n%1000), SessionId: fmt.Sprintf("session-%d", n/8),
		Model: &v1.Model{Provider: "bench", RequestModel: "bench-model"},
		Usage: &v1.Usage{InputTokens: 500, OutputTokens: 120},
		Content: &v1.Content{
			InputMessages: []*v1.Message{{Role: "user", Parts: []*v1.MessagePart{{Part: &v1.MessagePart_Text{Text: text}}}}},
		},
	}
}
