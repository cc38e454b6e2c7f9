package rpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/semaphore"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
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
	// inflightLogEvery is how often, at most, waiting is logged, and
	// how often, at most, cut bodies are.
	inflightLogEvery = 10 * time.Second
)

// inflight bounds the bytes of append requests being read and handled at
// once, on every listener of the server, and the bytes the requests of
// one API key hold among them (perKey), so that one app cannot take the
// whole bound. A request is charged before its body is read: its
// Content-Length when it gives one and its body is not compressed, an
// OTLP gRPC export the length its message's prefix declares (grpcCharge),
// else the largest request its path accepts (chunked or compressed
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
//
// An OTLP export also takes one of exportSlots slots, the bound of exports
// decoded and handled at once (OTLPOptions.MaxConcurrent), and the exports
// of one API key hold at most perKeySlots of them (its share of slots,
// OTLPOptions.MaxKeyConcurrent), so that one app's exports, however many
// and however slow, leave slots for the others. An export waits for its
// slots before its body is read, within the same maxWait, so a waiting
// export holds what it took before its wait (of its key's bytes, its
// key's slot and the server's bytes, in that order: below) and its
// stream's flow-control window, no more.
//
// What a request waits for comes in one order, the same for every
// request: its key's bytes, its key's slot, the server's bytes, the
// server's slot (an append: its key's bytes, the server's bytes); each
// first come first served (admit). So a key's exports beyond its share of
// slots wait behind each other holding only their key's bytes (bounded
// by its share), not in the server's queue nor holding the server's
// bytes: another key's export goes ahead of them, to the next slot freed.
// A request waits for each while holding only those before it, gives back
// what it holds when it gives up, and once admitted gives everything back
// when it ends, whatever it waits for. The waits cannot deadlock: all
// requests take in the same order, so whoever holds what a waiter waits
// for is admitted (and ends, or is cut) or waits for something later in
// the order; and nothing is later than the server's slot, so no request
// waits while holding one.
type inflight struct {
	max         int64
	perKey      int64
	maxWait     time.Duration // 0: as long as the request's context lives
	bodyTimeout time.Duration
	minRate     int64 // bytes a second
	sem         *semaphore.Weighted
	exportSlots int64
	perKeySlots int64               // export slots one API key holds at once
	exports     *semaphore.Weighted // OTLP export slots
	log         *slog.Logger
	now         func() time.Time // the clock of the log's rate limits
	// stopping ends when the server begins to shut down (drain): no
	// request waits for room any more.
	stopping context.Context
	drain    context.CancelFunc

	held           atomic.Int64 // bytes charged to requests being handled
	waiting        atomic.Int64 // requests waiting for room (bytes or a slot)
	waited         atomic.Int64 // requests that had to wait, since start
	refused        atomic.Int64 // requests refused after maxWait, since start
	exportsHeld    atomic.Int64 // export slots taken
	exportsWaiting atomic.Int64 // exports waiting for a slot (their key's or the server's)
	keyWaiting     atomic.Int64 // exports waiting for their key's share of slots
	cuts           atomic.Int64 // bodies cut, since start

	mu         sync.Mutex
	logged     time.Time
	cutLogged  time.Time
	cutsLogged int64                // cuts when the last cut was logged
	keys       map[string]*keyShare // API keys with requests waiting or admitted
}

// keyShare is what one API key's requests hold of perKey, and its
// exports of perKeySlots.
type keyShare struct {
	sem   *semaphore.Weighted
	slots *semaphore.Weighted
	refs  int // requests waiting or admitted
}

// newInflight returns the bound of max bytes, perKey of them for one API
// key, and of exportSlots OTLP export slots, perKeySlots of them for one
// key (each share at least 1 and at most its bound).
func newInflight(max, perKey, exportSlots, perKeySlots int64, maxWait, bodyTimeout time.Duration, minRate int64, log *slog.Logger) *inflight {
	stopping, drain := context.WithCancel(context.Background())
	perKeySlots = min(perKeySlots, exportSlots)
	if perKeySlots < 1 {
		perKeySlots = 1
	}
	return &inflight{max: max, perKey: min(max, perKey), maxWait: maxWait, bodyTimeout: bodyTimeout, minRate: minRate,
		sem: semaphore.NewWeighted(max), exportSlots: exportSlots, perKeySlots: perKeySlots,
		exports: semaphore.NewWeighted(exportSlots),
		log:     log, now: time.Now, stopping: stopping, drain: drain, keys: map[string]*keyShare{}}
}

// share returns key's share, counting one more request on it; unshare
// gives the count back and forgets a share no request uses.
func (g *inflight) share(key string) *keyShare {
	g.mu.Lock()
	defer g.mu.Unlock()
	ks := g.keys[key]
	if ks == nil {
		ks = &keyShare{sem: semaphore.NewWeighted(g.perKey), slots: semaphore.NewWeighted(g.perKeySlots)}
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
	// Waiting counts requests waiting for room: for bytes, or (OTLP
	// exports) for a slot; Waited and Refused count, since the server
	// started, those that had to wait and those refused after the
	// longest wait.
	Waiting, Waited, Refused int64
	// ExportSlots is the bound of OTLP exports read and handled at once;
	// ExportsInProgress hold a slot, ExportsWaiting wait for one (and are
	// counted in Waiting).
	ExportSlots, ExportsInProgress, ExportsWaiting int64
	// KeyExportSlots is the bound of one API key's exports in progress,
	// or past its share and waiting for the server's bytes or a slot (its
	// share of ExportSlots); ExportsWaitingForKey are the exports
	// waiting because their key holds its whole share (counted in
	// ExportsWaiting): where they are many and ExportsInProgress is below
	// ExportSlots, one app sends more exports at once than its share,
	// not the server is full.
	KeyExportSlots, ExportsWaitingForKey int64
	// BodiesCut counts the bodies cut for making no progress
	// (bodyTimeout, minRate), since the server started.
	BodiesCut int64
}

func (g *inflight) stats() InflightStats {
	return InflightStats{MaxBytes: g.max, HeldBytes: g.held.Load(), Waiting: g.waiting.Load(),
		Waited: g.waited.Load(), Refused: g.refused.Load(), ExportSlots: g.exportSlots,
		ExportsInProgress: g.exportsHeld.Load(), ExportsWaiting: g.exportsWaiting.Load(), BodiesCut: g.cuts.Load(),
		KeyExportSlots: g.perKeySlots, ExportsWaitingForKey: g.keyWaiting.Load()}
}

// errQueueWait: the server gave up waiting for room for a request.
var errQueueWait = errors.New("the server is handling as many request bytes as it takes at once")

// errKeyQueueWait: the server gave up waiting for room in a key's share.
var errKeyQueueWait = errors.New("this API key's requests hold as many request bytes as one key may at once")

// waitUntil is when a request arriving now stops waiting for room (zero:
// never, while its context lives).
func (g *inflight) waitUntil() time.Time {
	if g.maxWait <= 0 {
		return time.Time{}
	}
	return time.Now().Add(g.maxWait)
}

// errShuttingDown: a request waiting for room when the server began to
// shut down, or arriving after, that would have to wait.
var errShuttingDown = errors.New("the server is shutting down; retry (another node, or this one once it is back)")

// waitCtx is ctx ended at until (waitUntil), or when the server begins to
// shut down (drain), to wait in.
func (g *inflight) waitCtx(ctx context.Context, until time.Time) (context.Context, context.CancelFunc) {
	cancelUntil := context.CancelFunc(func() {})
	if !until.IsZero() {
		ctx, cancelUntil = context.WithDeadline(ctx, until)
	}
	wctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(g.stopping, cancel)
	return wctx, func() { unhook(); cancel(); cancelUntil() }
}

// gaveUp is the error of a request whose wait for room ended without
// room: its own end (canceled, deadline_exceeded); unavailable when the
// server began to shut down; else, past maxWait, refused (counted) with
// code and err.
func (g *inflight) gaveUp(ctx context.Context, code connect.Code, err error) error {
	switch {
	case ctx.Err() != nil:
		return connect.NewError(connectCodeOfContext(ctx.Err()), ctx.Err())
	case g.stopping.Err() != nil:
		return connect.NewError(connect.CodeUnavailable, errShuttingDown)
	}
	g.refused.Add(1)
	return connect.NewError(code, err)
}

// A claim is one thing a request takes on admission: n of sem, a bound
// of limit (bytes or slots), which a request refused after waiting for
// it past maxWait is told (refusal).
type claim struct {
	kind  claimKind
	sem   *semaphore.Weighted
	n     int64
	limit int64
}

// claimKind names a claim; the kinds are in their one order (inflight).
type claimKind int

const (
	keyBytes claimKind = iota
	keySlot
	serverBytes
	serverSlot
)

// admit takes, for a request of the API key key charged n bytes (at most
// the bound), its claims in their one order (inflight): its key's bytes,
// its key's export slot (export only), the server's bytes, a server's
// export slot (export only), waiting for each, first come first served,
// until until (waitUntil) while ctx lives. It returns the function that
// gives everything back, once however often it is called. Its error is
// a *connect.Error: the request's own end (canceled, deadline_exceeded);
// unavailable once the server begins to shut down (drain: a request that
// has waited is then answered, not admitted, even if room came at that
// moment); past maxWait, resource_exhausted waiting for bytes, unavailable
// waiting for a slot (retryable in OTLP: 503 with Retry-After over HTTP),
// its message naming the bound. A request that gives up holds nothing.
// waited says whether the request has waited already (it is counted in
// Waited once); admit sets it when it waits.
func (g *inflight) admit(ctx context.Context, until time.Time, key string, n int64, export bool, waited *bool) (func(), error) {
	n = min(max(n, 1), g.max)
	ks := g.share(key)
	claims := []claim{{keyBytes, ks.sem, min(n, g.perKey), g.perKey}, {keySlot, ks.slots, 1, g.perKeySlots},
		{serverBytes, g.sem, n, g.max}, {serverSlot, g.exports, 1, g.exportSlots}}
	if !export {
		claims = []claim{claims[0], claims[2]}
	}
	giveBack := func(held []claim) {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].sem.Release(held[i].n)
		}
		g.unshare(key, ks)
	}
	waitedHere := false
	for i, c := range claims {
		if c.sem.TryAcquire(c.n) {
			continue
		}
		waitedHere = true
		if err := g.waitFor(ctx, until, key, c, waited); err != nil {
			giveBack(claims[:i])
			return nil, g.gaveUp(ctx, c.code(), c.refusal(g.maxWait))
		}
	}
	if waitedHere && g.stopping.Err() != nil {
		// Room taken at once after a wait, as the shutdown began: as
		// wait, answered, not admitted.
		giveBack(claims)
		return nil, g.gaveUp(ctx, connect.CodeUnavailable, errShuttingDown)
	}
	g.held.Add(n)
	if export {
		g.exportsHeld.Add(1)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.held.Add(-n)
			if export {
				g.exportsHeld.Add(-1)
			}
			giveBack(claims)
		})
	}, nil
}

// waitFor waits for c (wait) for a request of key, counted meanwhile in
// the stats of those waiting for it, and logged (note).
func (g *inflight) waitFor(ctx context.Context, until time.Time, key string, c claim, waited *bool) error {
	g.countWaited(waited)
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	switch c.kind {
	case keyBytes, serverBytes:
		g.note(ctx, "appends wait for room: the bytes of requests in flight reached --max-inflight-bytes")
	case keySlot:
		g.exportsWaiting.Add(1)
		defer g.exportsWaiting.Add(-1)
		g.keyWaiting.Add(1)
		defer g.keyWaiting.Add(-1)
		g.note(ctx, "OTLP exports of one API key wait for a slot: the key has --otlp-max-key-concurrent exports in progress", "key_id", key)
	case serverSlot:
		g.exportsWaiting.Add(1)
		defer g.exportsWaiting.Add(-1)
		g.note(ctx, "OTLP exports wait for a slot: --otlp-max-concurrent exports are in progress")
	}
	return g.wait(ctx, until, c.sem, c.n)
}

// code is the code of a request refused past maxWait waiting for c.
func (c claim) code() connect.Code {
	if c.kind == keySlot || c.kind == serverSlot {
		return connect.CodeUnavailable
	}
	return connect.CodeResourceExhausted
}

// refusal is the error of a request refused after waiting maxWait for c.
func (c claim) refusal(maxWait time.Duration) error {
	switch c.kind {
	case keyBytes:
		return fmt.Errorf("%w (%d bytes) and waited %s for room; retry later", errKeyQueueWait, c.limit, maxWait)
	case serverBytes:
		return fmt.Errorf("%w (%d bytes) and waited %s for room; retry later", errQueueWait, c.limit, maxWait)
	case keySlot:
		return fmt.Errorf("%d %w and waited %s for a slot; retry later", c.limit, errKeySlotWait, maxWait)
	default:
		return fmt.Errorf("%d %w and waited %s for a slot; retry later", c.limit, errSlotWait, maxWait)
	}
}

// wait takes n of sem, waiting while ctx lives, until until (waitUntil)
// and until the server begins to shut down. Its error is the wait's end;
// on error it holds nothing. Room that comes as the shutdown begins (what
// the refused waiters give back) is given back: a waiter is then
// answered, not admitted.
func (g *inflight) wait(ctx context.Context, until time.Time, sem *semaphore.Weighted, n int64) error {
	wctx, cancel := g.waitCtx(ctx, until)
	defer cancel()
	if err := sem.Acquire(wctx, n); err != nil {
		return err
	}
	if err := g.stopping.Err(); err != nil {
		sem.Release(n)
		return err
	}
	return nil
}

// errSlotWait: the server gave up waiting for an export slot.
var errSlotWait = errors.New("exports are in progress, the most this server decodes at once")

// errKeySlotWait: the server gave up waiting for room in a key's share of
// export slots.
var errKeySlotWait = errors.New("of this API key's exports are in progress, the most one key may have at once")

// countWaited counts a request in Waited the first time it waits (an
// export may wait for bytes, then for a slot: one request).
func (g *inflight) countWaited(waited *bool) {
	if !*waited {
		*waited = true
		g.waited.Add(1)
	}
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

// note logs msg, with attrs and the stats, at most every
// inflightLogEvery, when requests wait for room: how operators see
// back-pressure (with Handler.InflightStats).
func (g *inflight) note(ctx context.Context, msg string, attrs ...any) {
	g.mu.Lock()
	due := g.due(&g.logged)
	g.mu.Unlock()
	if !due {
		return
	}
	s := g.stats()
	g.log.WarnContext(ctx, msg, append(attrs,
		"max_inflight_bytes", s.MaxBytes, "held_bytes", s.HeldBytes, "waiting", s.Waiting, "waited_total", s.Waited, "refused_total", s.Refused,
		"export_slots", s.ExportSlots, "exports_in_progress", s.ExportsInProgress, "exports_waiting", s.ExportsWaiting,
		"key_export_slots", s.KeyExportSlots, "exports_waiting_for_key", s.ExportsWaitingForKey)...)
}

// due reports, with g.mu held, whether a line last logged at *last may
// be logged again now (at most every inflightLogEvery), and if so sets
// *last to now.
func (g *inflight) due(last *time.Time) bool {
	now := g.now()
	if !last.IsZero() && now.Sub(*last) < inflightLogEvery {
		return false
	}
	*last = now
	return true
}

// cut counts a body cut (bodyDeadline) and logs it, at most every
// inflightLogEvery, with the cuts since the last line: a client that
// opens many stalled requests writes a line a period, not one each.
func (g *inflight) cut(ctx context.Context, read int64, err error) {
	total := g.cuts.Add(1)
	g.mu.Lock()
	if !g.due(&g.cutLogged) {
		g.mu.Unlock()
		return
	}
	since := total - g.cutsLogged
	g.cutsLogged = total
	g.mu.Unlock()
	g.log.InfoContext(ctx, "an append's body was cut (--body-timeout, --min-body-rate)",
		"bytes_read", read, "err", err, "cuts_since_last_line", since, "cuts_total", total)
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

// gate makes next wait for room for the request's bytes (and, for an OTLP
// export, a slot) before it reads the body, then holds its body to
// bodyTimeout and minRate; limit is the largest request next accepts.
// export gates the OTLP gRPC services: their refusals for load are
// unavailable, which OTLP/gRPC exporters retry (resource_exhausted
// without RetryInfo they drop: otlp.GRPCError).
func (g *inflight) gate(next http.Handler, limit int, export bool) http.Handler {
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := g.enter(r.Context(), w, r, limit, export)
		if err != nil {
			if export {
				err = otlp.GRPCError(err)
			}
			errw.Write(w, r, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// enter waits, while ctx lives and for at most maxWait in all, for room
// for r's bytes (at most limit) under the bound and the share of ctx's API
// key and, for an OTLP export, for an export slot (admit); then it holds
// r's body to bodyTimeout and minRate. The caller calls release once it is
// done with the request.
func (g *inflight) enter(ctx context.Context, w http.ResponseWriter, r *http.Request, limit int, export bool) (release func(), err error) {
	until := g.waitUntil()
	charge := chargeOf(r, limit)
	if export && isGRPC(r) {
		if charge, err = g.grpcCharge(ctx, w, r, limit); err != nil {
			return nil, err
		}
	}
	var waited bool
	if release, err = g.admit(ctx, until, keyOf(ctx), charge, export, &waited); err != nil {
		return nil, err
	}
	g.bodyDeadline(w, r)
	return release, nil
}

// isGRPC says whether r is a gRPC request (not gRPC-Web, not Connect).
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return (ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+")) && r.ProtoMajor == 2
}

// grpcPrefix is the length of a gRPC message's prefix: a flags byte (bit
// 0: compressed) and the message's length, big-endian u32.
const grpcPrefix = 5

// grpcCharge is what the unary gRPC request r (an OTLP export, which
// accepts at most limit bytes) is charged: gRPC clients such as grpc-go
// send no Content-Length, and charging each the whole limit would let a
// few small exports fill the bound. It reads the message's prefix, the
// body sending nothing for at most bodyTimeout: an uncompressed message
// is charged its declared length, a compressed one limit, its
// decompressed size being unknown. A message declaring more than limit
// bytes (compressed or not: connect-go refuses it too) is refused at
// once, resource_exhausted wrapping otlp.ErrTooLarge, which is not
// retryable (the export is the client's data, and would be refused
// again), before admission and reading nothing more of it: otherwise
// connect-go would read and discard the declared length, up to 4 GiB,
// before refusing it. The bytes read are given back to r's body, which
// then ends with the message: a request that sends more is refused
// (declaredBody), so that the charge bounds what it holds. A body that
// ends within the prefix is charged what it sent; its handler refuses it.
func (g *inflight) grpcCharge(ctx context.Context, w http.ResponseWriter, r *http.Request, limit int) (int64, error) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(g.bodyTimeout)); err != nil {
		return chargeOf(r, limit), nil // no deadline, no read before admission
	}
	var p [grpcPrefix]byte
	n, err := io.ReadFull(r.Body, p[:])
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// As a cut body (progressBody): the deadline stays.
		g.cut(ctx, int64(n), err)
		return 0, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
			"the request body was cut: it sent nothing for --body-timeout (%s) before its message's length", g.bodyTimeout))
	}
	rc.SetReadDeadline(time.Time{})
	if err != nil {
		r.Body = &declaredBody{ReadCloser: r.Body, prefix: p[:n]}
		return int64(n), nil
	}
	size := int64(binary.BigEndian.Uint32(p[1:]))
	if size > int64(limit) {
		return 0, errMessageTooLarge(size, limit)
	}
	r.Body = &declaredBody{ReadCloser: r.Body, prefix: p[:], left: size, max: int64(limit)}
	if p[0]&1 != 0 {
		return int64(limit), nil
	}
	return min(grpcPrefix+size, int64(limit)), nil
}

// errMessageTooLarge refuses a gRPC export whose message declares size
// bytes, more than limit (--otlp-max-bytes): resource_exhausted, which
// otlp.GRPCError leaves as it is (not retryable).
func errMessageTooLarge(size int64, limit int) error {
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"%w: its gRPC message declares %d bytes, more than --otlp-max-bytes (%d); send smaller batches", otlp.ErrTooLarge, size, limit))
}

// declaredBody is a gRPC request body whose prefix was read (grpcCharge):
// it gives back the prefix, then the message's left bytes, then the end
// of the body, or an error if the body goes on: a unary request carries
// one message. It never gives more than max bytes of the message: past
// them it fails with errMessageTooLarge (grpcCharge refuses a message
// declaring more first; this is the second guard).
type declaredBody struct {
	io.ReadCloser
	prefix []byte
	left   int64 // bytes of the message not yet read
	read   int64 // bytes of the message read
	max    int64 // --otlp-max-bytes
}

// errMoreThanDeclared: a gRPC export's body went on past its message.
var errMoreThanDeclared = errors.New("the request body goes on past the message its prefix declares: an export is one gRPC message")

func (b *declaredBody) Read(p []byte) (int, error) {
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		return n, nil
	}
	if b.left > 0 {
		if b.read >= b.max {
			return 0, errMessageTooLarge(b.read+b.left, int(b.max))
		}
		if int64(len(p)) > min(b.left, b.max-b.read) {
			p = p[:min(b.left, b.max-b.read)]
		}
		n, err := b.ReadCloser.Read(p)
		b.left -= int64(n)
		b.read += int64(n)
		return n, err
	}
	var one [1]byte
	n, err := b.ReadCloser.Read(one[:])
	if n > 0 {
		return 0, connect.NewError(connect.CodeInvalidArgument, errMoreThanDeclared)
	}
	return 0, err
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
	b := &progressBody{ReadCloser: r.Body, rc: rc, timeout: g.bodyTimeout, rate: g.minRate, start: now, deadline: now.Add(g.bodyTimeout), g: g, ctx: r.Context()}
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
	cut      error           // once cut, what every read returns
	g        *inflight       // counts and logs the cut
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
		b.g.cut(b.ctx, b.read, err)
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
	gated := g.gate(next, limit, false)
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
