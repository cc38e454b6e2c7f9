package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/semaphore"

	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// Defaults of the in-flight bound of appends (README, "Memory and
// back-pressure").
const (
	// DefaultInflightRequests is how many maximal requests the default
	// bound of in-flight append bytes holds at once.
	DefaultInflightRequests = 64
	// DefaultMaxQueueWait is how long an append waits for room before it
	// is refused with resource_exhausted (its own deadline may end it
	// sooner).
	DefaultMaxQueueWait = time.Minute
	// DefaultBodyTimeout is how long an admitted append's body may send
	// nothing before it is cut and its bytes released.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultMinBodyRate is the least average rate, in bytes a second, at
	// which an admitted append's body must arrive once its first body
	// timeout has passed.
	DefaultMinBodyRate = 64 << 10
	// inflightLogEvery is how often, at most, waiting is logged.
	inflightLogEvery = 10 * time.Second
)

// inflight bounds the bytes of append requests being read and handled at
// once, on every listener of the server, and the bytes the requests of
// one API key hold among them (perKey), so that one app cannot take the
// whole bound. A request is charged before its body is read: its
// Content-Length when it gives one and its body is not compressed, else
// the largest request its path accepts (gRPC, chunked or compressed
// bodies). A request waits, first come first served, while there is no
// room (its key's, then the server's), until its context ends or maxWait
// passes; it never waits for more than either bound, each at least one
// maximal request. Once admitted, its body must make progress: a body
// that sends nothing for bodyTimeout, or that falls behind minRate bytes a
// second on average past a grace of bodyTimeout, is cut (bodyDeadline),
// which ends the request and gives its bytes back: a body of n bytes is
// read within bodyTimeout + n/minRate of admission, or cut. The charge is the request's bytes as
// read, after decompression: what it holds decoded is a small multiple of
// it (docs: "Memory and back-pressure").
type inflight struct {
	max         int64
	perKey      int64
	maxWait     time.Duration // 0: as long as the request's context lives
	bodyTimeout time.Duration
	minRate     int64 // bytes a second
	sem         *semaphore.Weighted
	log         *slog.Logger

	held    atomic.Int64 // bytes charged to requests being handled
	waiting atomic.Int64 // requests waiting for room
	waited  atomic.Int64 // requests that had to wait, since start
	refused atomic.Int64 // requests refused after maxWait, since start

	mu     sync.Mutex
	logged time.Time
	keys   map[string]*keyShare // API keys with requests waiting or admitted
}

// keyShare is what one API key's requests hold of perKey.
type keyShare struct {
	sem  *semaphore.Weighted
	refs int // requests waiting or admitted
}

func newInflight(max, perKey int64, maxWait, bodyTimeout time.Duration, minRate int64, log *slog.Logger) *inflight {
	return &inflight{max: max, perKey: min(max, perKey), maxWait: maxWait, bodyTimeout: bodyTimeout, minRate: minRate,
		sem: semaphore.NewWeighted(max), log: log, keys: map[string]*keyShare{}}
}

// share returns key's share, counting one more request on it; unshare
// gives the count back and forgets a share no request uses.
func (g *inflight) share(key string) *keyShare {
	g.mu.Lock()
	defer g.mu.Unlock()
	ks := g.keys[key]
	if ks == nil {
		ks = &keyShare{sem: semaphore.NewWeighted(g.perKey)}
		g.keys[key] = ks
	}
	ks.refs++
	return ks
}

func (g *inflight) unshare(key string, ks *keyShare) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ks.refs--; ks.refs == 0 {
		delete(g.keys, key)
	}
}

// InflightStats is what the in-flight bound of appends holds now.
type InflightStats struct {
	MaxBytes  int64 // the bound
	HeldBytes int64 // charged to requests being read and handled
	Waiting   int64 // requests waiting for room
	Waited    int64 // requests that waited, since the server started
	Refused   int64 // requests refused after the longest wait, since start
}

func (g *inflight) stats() InflightStats {
	return InflightStats{MaxBytes: g.max, HeldBytes: g.held.Load(), Waiting: g.waiting.Load(),
		Waited: g.waited.Load(), Refused: g.refused.Load()}
}

// errQueueWait: the server gave up waiting for room for a request.
var errQueueWait = errors.New("the server is handling as many request bytes as it takes at once")

// errKeyQueueWait: the server gave up waiting for room in a key's share.
var errKeyQueueWait = errors.New("this API key's requests hold as many request bytes as one key may at once")

// acquire charges n bytes (at most the bound) to a request of the API key
// key, waiting for room; it returns the function that gives them back.
// Its error is a *connect.Error: the request's own end (canceled,
// deadline_exceeded), or resource_exhausted once maxWait has passed. A
// request that gives up holds nothing.
func (g *inflight) acquire(ctx context.Context, key string, n int64) (func(), error) {
	n = min(max(n, 1), g.max)
	kn := min(n, g.perKey)
	ks := g.share(key)
	admitted := false
	if ks.sem.TryAcquire(kn) {
		if admitted = g.sem.TryAcquire(n); !admitted {
			ks.sem.Release(kn)
		}
	}
	if !admitted {
		g.waiting.Add(1)
		g.waited.Add(1)
		g.note(ctx)
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if g.maxWait > 0 {
			wctx, cancel = context.WithTimeout(ctx, g.maxWait)
		}
		bound, limit := errKeyQueueWait, g.perKey
		err := ks.sem.Acquire(wctx, kn)
		if err == nil {
			bound, limit = errQueueWait, g.max
			if err = g.sem.Acquire(wctx, n); err != nil {
				ks.sem.Release(kn)
			}
		}
		cancel()
		g.waiting.Add(-1)
		if err != nil {
			g.unshare(key, ks)
			if ctx.Err() != nil {
				return nil, connect.NewError(connectCodeOfContext(ctx.Err()), ctx.Err())
			}
			g.refused.Add(1)
			return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%w (%d bytes) and waited %s for room; retry later", bound, limit, g.maxWait))
		}
	}
	g.held.Add(n)
	var once sync.Once
	return func() {
		once.Do(func() {
			g.held.Add(-n)
			g.sem.Release(n)
			ks.sem.Release(kn)
			g.unshare(key, ks)
		})
	}, nil
}

// keyOf names the API key a request was authenticated with (the front
// handler's or the OTLP transport's authentication), for its share.
func keyOf(ctx context.Context) string {
	if au, ok := ctx.Value(authenticatedKey).(*authenticated); ok {
		return au.keyID
	}
	if p, _ := principalFrom(ctx); p != nil {
		return p.KeyID
	}
	return ""
}

// connectCodeOfContext is the code of a request whose context ended.
func connectCodeOfContext(err error) connect.Code {
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.CodeDeadlineExceeded
	}
	return connect.CodeCanceled
}

// note logs, at most every inflightLogEvery, that requests wait for room:
// how operators see back-pressure (with Handler.InflightStats).
func (g *inflight) note(ctx context.Context) {
	g.mu.Lock()
	now := time.Now()
	if now.Sub(g.logged) < inflightLogEvery {
		g.mu.Unlock()
		return
	}
	g.logged = now
	g.mu.Unlock()
	s := g.stats()
	g.log.WarnContext(ctx, "appends wait for room: the bytes of requests in flight reached --max-inflight-bytes",
		"max_inflight_bytes", s.MaxBytes, "held_bytes", s.HeldBytes, "waiting", s.Waiting, "waited_total", s.Waited, "refused_total", s.Refused)
}

// chargeOf is what a request to a path that accepts at most limit bytes is
// charged: its Content-Length if it has one and no compressed body,
// else limit.
func chargeOf(r *http.Request, limit int) int64 {
	compressed := false
	for _, h := range []string{"Content-Encoding", "Connect-Content-Encoding", "Grpc-Encoding"} {
		if v := r.Header.Get(h); v != "" && v != "identity" {
			compressed = true
		}
	}
	if r.ContentLength >= 0 && !compressed {
		return min(r.ContentLength, int64(limit))
	}
	return int64(limit)
}

// gate makes next wait for room for the request's bytes before it reads
// the body, then holds its body to bodyTimeout and minRate; limit is the
// largest request next accepts.
func (g *inflight) gate(next http.Handler, limit int) http.Handler {
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := g.enter(r.Context(), w, r, limit)
		if err != nil {
			errw.Write(w, r, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// enter waits, while ctx lives, for room for r's bytes (at most limit)
// under the bound and the share of ctx's API key, then holds r's body to
// bodyTimeout and minRate. The caller calls release once it is done with
// the request.
func (g *inflight) enter(ctx context.Context, w http.ResponseWriter, r *http.Request, limit int) (release func(), err error) {
	release, err = g.acquire(ctx, keyOf(ctx), chargeOf(r, limit))
	if err != nil {
		return nil, err
	}
	g.bodyDeadline(w, r)
	return release, nil
}

// bodyDeadline makes r's body, admitted and not yet read, end with an
// error once it sends nothing for bodyTimeout, or once it falls behind
// minRate: it sets the request's read deadline (http.ResponseController:
// the connection's over HTTP/1.1, the stream's over HTTP/2, h2c included)
// and moves it forward as bytes arrive (progressBody), never past
// bodyTimeout from now nor past the time the bytes read so far earn at
// minRate after a grace of bodyTimeout from admission. A drip of a byte
// now and then is cut about bodyTimeout after admission, and a body of n
// bytes is read within bodyTimeout + n/minRate, or cut. At the body's end the
// deadline is lifted: handling the request (an append's fsync) takes what
// it takes, and over HTTP/1.1 an expired deadline would cancel the
// request's context. A writer that cannot set deadlines (none of the
// server's) leaves the body as it is.
func (g *inflight) bodyDeadline(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	now := time.Now()
	b := &progressBody{ReadCloser: r.Body, rc: rc, timeout: g.bodyTimeout, rate: g.minRate, start: now, deadline: now.Add(g.bodyTimeout), log: g.log, ctx: r.Context()}
	if err := rc.SetReadDeadline(b.deadline); err != nil {
		return
	}
	r.Body = b
}

// progressBody moves its request's read deadline forward as its bytes
// arrive (bodyDeadline).
type progressBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	rate     int64     // the least rate, bytes a second, past the grace
	start    time.Time // when the request was admitted
	read     int64     // bytes read so far
	deadline time.Time // the read deadline last set
	ended    bool
	cut      error // once cut, what every read returns
	log      *slog.Logger
	ctx      context.Context // the request's, for the log
}

// errBodyCut is what a request whose body the server cut reads, and what
// its client is answered: the limits by name, not the read's own error,
// which names the server's and the client's socket addresses (the
// server's log keeps it).
func (b *progressBody) errBodyCut() error {
	return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
		"the request body was cut: it sent nothing for --body-timeout (%s) or fell behind --min-body-rate (%d bytes a second) after %d bytes; send it faster, or in smaller requests",
		b.timeout, b.rate, b.read))
}

func (b *progressBody) Read(p []byte) (int, error) {
	if b.cut != nil {
		return 0, b.cut
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	switch {
	case b.ended:
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		// Cut: the deadline stays, so that the server reads no more of
		// this body (over HTTP/1.1 it would otherwise wait for the rest
		// before answering) and closes the connection after its answer.
		b.ended = true
		b.log.InfoContext(b.ctx, "an append's body was cut (--body-timeout, --min-body-rate)", "bytes_read", b.read, "err", err)
		b.cut = b.errBodyCut()
		return n, b.cut
	case err != nil:
		b.ended = true
		b.rc.SetReadDeadline(time.Time{})
	case n > 0:
		now := time.Now()
		d := b.due(now)
		// Moved by a tenth of the timeout at least, so that a fast body
		// sets it seldom, or whenever progress earns time while the
		// deadline is near (a body close to the least rate), so that a
		// body keeping to it is never cut by a deadline set long before.
		if d.Sub(b.deadline) >= b.timeout/10 || d.After(b.deadline) && b.deadline.Sub(now) < b.timeout/10 {
			b.deadline = d
			b.rc.SetReadDeadline(d)
		}
	}
	return n, err
}

// due is the read deadline at now: bodyTimeout from now, but no later
// than what the bytes read so far earn at the least rate, after a grace
// of bodyTimeout from admission.
func (b *progressBody) due(now time.Time) time.Time {
	earned := time.Duration(b.read/b.rate)*time.Second + time.Duration(b.read%b.rate)*time.Second/time.Duration(b.rate)
	if by := b.start.Add(b.timeout + earned); by.Before(now.Add(b.timeout)) {
		return by
	}
	return now.Add(b.timeout)
}

// appendsGated gates the procedures of IngestService that append
// (AppendSpans, RegisterVersion); its reads pass.
func appendsGated(g *inflight, next http.Handler, limit int) http.Handler {
	gated := g.gate(next, limit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case veritracev1connect.IngestServiceAppendSpansProcedure, veritracev1connect.IngestServiceRegisterVersionProcedure:
			gated.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// HTTP/2 flow control of the API's servers. A request waiting for room
// has not read its body, so the data its client sent holds its stream's
// window and as much of its connection's; the connection's window is big
// enough for every stream's, so that waiting streams never hold up the
// body of an admitted one on the same connection (which would deadlock
// until the wait gave up). What waiting streams hold is bounded by
// http2MaxStreams × http2StreamWindow per connection.
const (
	http2MaxStreams   = 100
	http2StreamWindow = 256 << 10
)

// HTTP2Config is the HTTP/2 configuration of the servers that serve the
// API (NewHandler, OTLPHandler).
func HTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          http2MaxStreams,
		MaxReceiveBufferPerStream:     http2StreamWindow,
		MaxReceiveBufferPerConnection: http2MaxStreams * http2StreamWindow,
	}
}
