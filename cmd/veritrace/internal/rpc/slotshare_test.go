package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// TestOneKeyCannotTakeEveryExportSlot: key A (tenant acme) sends as many
// OTLP exports as there are export slots, over gRPC and HTTP, and each
// blocks in its append; key B (tenant globex), which holds nothing, then
// exports over gRPC and HTTP. B's exports must go through at once, while
// A's still block: A holds at most its share of the slots (by default
// half), and its further exports wait for its share, not in front of B.
// Once A's are released, every export of A is appended too.
func TestOneKeyCannotTakeEveryExportSlot(t *testing.T) {
	const slots = 4
	s, a, b, enteredA, unblock := startTwoKeys(t, Options{OTLP: OTLPOptions{MaxConcurrent: slots}})
	defer unblock()
	ctx := context.Background()
	errsA := make(chan error, slots)
	for i := range slots {
		go func() {
			var err error
			if i%2 == 0 {
				_, err = a.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(100+i))))
			} else if _, _, err = a.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(100+i)))); err != nil {
				err = fmt.Errorf("OTLP/HTTP: %w", err)
			}
			errsA <- err
		}()
	}
	// Every export of A is in its append (holding a slot) or waiting.
	waitFor(t, s, "key A's exports in progress or waiting", func(st InflightStats) bool {
		return st.ExportsInProgress+st.ExportsWaiting == slots && enteredA.Load() == st.ExportsInProgress
	})

	for _, proto := range []string{"gRPC", "OTLP/HTTP"} {
		done := make(chan error, 1)
		go func() {
			var err error
			if proto == "gRPC" {
				_, err = b.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(200))))
			} else {
				_, _, err = b.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(201))))
			}
			done <- err
		}()
		waitFor(t, s, "key B's "+proto+" export answered, or waiting for a slot behind key A's", func(st InflightStats) bool {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("key B's %s export while key A's exports block = %v, want it appended", proto, err)
				}
				done <- nil
				return true
			default:
			}
			return st.ExportsInProgress == slots && st.ExportsWaiting > 0 && enteredA.Load() == slots
		})
		select {
		case <-done:
		default:
			t.Fatalf("key B's %s export (B holds nothing) waits for a slot: key A's %d exports hold every one of the %d slots: %+v",
				proto, enteredA.Load(), slots, s.h.InflightStats())
		}
	}
	if n, _ := otlpEntries(t, s.l, "globex"); n != 2 {
		t.Errorf("%d spans of key B stored while key A's exports block, want 2", n)
	}

	unblock()
	for range slots {
		if err := <-errsA; err != nil {
			t.Errorf("an export of key A: %v", err)
		}
	}
	if n, _ := otlpEntries(t, s.l, "acme"); n != slots {
		t.Errorf("%d spans of key A stored, want %d", n, slots)
	}
	waitFor(t, s, "everything given back", func(st InflightStats) bool {
		return st.HeldBytes == 0 && st.Waiting == 0 && st.ExportsInProgress == 0 && st.ExportsWaiting == 0
	})
}

// TestKeySlotWaitersGiveUpOrAreRefused: while key A holds its whole share
// of export slots (one, of four), its further exports wait for the share,
// and key B's exports go through meanwhile: A's waiters are not in front
// of B's. A waiter of A whose client gives up frees its place at once; one
// that waits past MaxQueueWait is refused retryably, naming the key's
// share: gRPC UNAVAILABLE, OTLP/HTTP 503 with Retry-After. Nothing of
// A's refused exports is appended, and once A's export ends everything
// is given back, its key's share of slots included.
func TestKeySlotWaitersGiveUpOrAreRefused(t *testing.T) {
	s, a, b, enteredA, unblock := startTwoKeys(t, Options{OTLP: OTLPOptions{MaxConcurrent: 4, MaxKeyConcurrent: 1}, MaxQueueWait: new(200 * time.Millisecond)})
	defer unblock()
	ctx := context.Background()
	first := exportAsync(ctx, a, otlpSpan(1))
	waitFor(t, s, "A's first export holding A's whole share", func(st InflightStats) bool {
		return enteredA.Load() == 1 && st.ExportsInProgress == 1
	})

	cctx, cancel := context.WithCancel(ctx)
	gaveUp := exportAsync(cctx, a, otlpSpan(2))
	waitFor(t, s, "an export of A waiting for its key's share", func(st InflightStats) bool {
		return st.ExportsWaitingForKey == 1 && st.ExportsWaiting == 1 && st.Waiting == 1 && st.KeyExportSlots == 1
	})
	cancel()
	if err := <-gaveUp; connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("a waiting export of A whose client gave up = %v, want canceled", err)
	}
	waitFor(t, s, "rid of A's waiter", func(st InflightStats) bool {
		return st.ExportsWaitingForKey == 0 && st.ExportsWaiting == 0 && st.Waiting == 0 && st.ExportsInProgress == 1
	})

	// Another export of A waits for its share, and is refused past
	// MaxQueueWait; B's exports, over gRPC and HTTP, go through
	// meanwhile, whenever A's is refused.
	refused := exportAsync(ctx, a, otlpSpan(3))
	waitFor(t, s, "an export of A waiting for its key's share, or refused", func(st InflightStats) bool {
		return st.ExportsWaitingForKey == 1 || st.Refused == 1
	})
	if _, err := b.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(100)))); err != nil {
		t.Errorf("key B's gRPC export while an export of A waits for A's share = %v, want it appended", err)
	}
	if _, _, err := b.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(101)))); err != nil {
		t.Errorf("key B's OTLP/HTTP export while an export of A waits for A's share = %v, want it appended", err)
	}
	err := <-refused
	wantCode(t, "gRPC export of A past the longest wait for its key's share", err, connect.CodeUnavailable, "of this API key's exports are in progress")
	if !retryableByOTLPGRPC(err) {
		t.Errorf("gRPC export of A refused waiting for its key's share = %v: an OTLP/gRPC exporter drops it", err)
	}
	status, _, err := a.otlp.post(ctx, otlp.TracesPath, otlp.ContentProtobuf, mustMarshal(otlpExport(otlpSpan(4))))
	var he *httpError
	if status != 503 || !errors.As(err, &he) || he.header.Get("Retry-After") == "" || !strings.Contains(he.msg, "1 of this API key's exports are in progress") {
		t.Errorf("OTLP/HTTP export of A past the longest wait for its key's share = %d %v, want 503 with Retry-After naming the key's share", status, err)
	}
	if st := s.h.InflightStats(); st.Refused != 2 || st.Waited != 3 {
		t.Errorf("stats after one waiter of A gave up and two were refused: %+v; want Refused 2, Waited 3", st)
	}
	if n, _ := otlpEntries(t, s.l, "globex"); n != 2 {
		t.Errorf("%d spans of B stored, want 2", n)
	}
	unblock()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n, _ := otlpEntries(t, s.l, "acme"); n != 1 {
		t.Errorf("%d spans of A stored, want 1 (its refused and abandoned exports appended nothing)", n)
	}
	waitFor(t, s, "everything given back", func(st InflightStats) bool {
		return st.HeldBytes == 0 && st.Waiting == 0 && st.ExportsInProgress == 0 && st.ExportsWaiting == 0
	})
	checkAllFree(t, s.h.s.inflight)
	if _, err := a.otlp.traces.CallUnary(ctx, connect.NewRequest(otlpExport(otlpSpan(5)))); err != nil {
		t.Errorf("an export of A once its share is free: %v", err)
	}
}

// startTwoKeys starts a server with opts whose OTLP exports of tenant
// acme block in their append (entered counts those that began) until
// unblock is called, and returns clients of an ingester key of acme (A)
// and of one of globex (B). Defer unblock: a failing test then leaves no
// handler blocked; the stats are logged on failure.
func startTwoKeys(t *testing.T, opts Options) (s *testServer, a, b clients, entered *atomic.Int64, unblock func()) {
	entered = new(atomic.Int64)
	release := make(chan struct{})
	var once sync.Once
	unblock = func() { once.Do(func() { close(release) }) }
	var l atomic.Pointer[ledger.Ledger]
	opts.otlpAppend = func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error) {
		if tenant == "acme" {
			entered.Add(1)
			<-release
		}
		return l.Load().Append(ctx, tenant, recs)
	}
	s = startServerWith(t, opts)
	l.Store(s.l)
	s.tenant(t, "acme")
	s.tenant(t, "globex")
	a = s.clients("grpc", "", s.key(t, policy.Ingester, "acme"))
	b = s.clients("grpc", "", s.key(t, policy.Ingester, "globex"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stats: %+v", s.h.InflightStats())
		}
	})
	return s, a, b, entered, unblock
}

// checkAllFree checks that g holds nothing: every byte and export slot
// free, and no key's share counted (a share no request uses is
// forgotten, so one a request forgot to give back would stay).
func checkAllFree(t *testing.T, g *inflight) {
	t.Helper()
	if !g.sem.TryAcquire(g.max) {
		t.Errorf("the byte bound is not wholly free")
	} else {
		g.sem.Release(g.max)
	}
	if !g.exports.TryAcquire(g.exportSlots) {
		t.Errorf("not every export slot is free")
	} else {
		g.exports.Release(g.exportSlots)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.keys) != 0 {
		t.Errorf("%d key shares still counted", len(g.keys))
	}
}

// TestExportSlotSharesProperty drives admit from many goroutines of
// several keys, exports and appends, over random bounds and charges, some
// giving up at random moments, some past a short maxWait, some at the
// shutdown, and gives back what each admitted twice: at no moment does
// one key hold more than its share of bytes or slots, nor the server more
// than its bound or its slots; every request is answered (no deadlock:
// the waits come in one order), admitted or refused with the code of
// the wait it gave up in, or its own end; and once all have ended every
// byte, slot and share is free and counted as such. Over the rounds each
// of the four waits (a key's bytes, its slots, the server's bytes, its
// slots) is seen refused past maxWait, so each is reached with something
// held before it.
func TestExportSlotSharesProperty(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rounds := 40
	if testing.Short() {
		rounds = 8
	}
	var refusedAt sync.Map // the bound named by refusals past maxWait → count
	bounds := []error{errKeyQueueWait, errKeySlotWait, errQueueWait, errSlotWait}
	for seed := range uint64(rounds) {
		rng := rand.New(rand.NewPCG(seed, 11))
		slots := int64(1 + rng.IntN(6))
		perKey := int64(1 + rng.IntN(int(slots)))
		keys := 1 + rng.IntN(4)
		maxBytes := int64(200 + rng.IntN(800))
		perKeyBytes := min(maxBytes, int64(100+rng.IntN(int(maxBytes))))
		var maxWait time.Duration
		if rng.IntN(3) != 0 {
			maxWait = time.Duration(1+rng.IntN(20)) * time.Millisecond
		}
		g := newInflight(maxBytes, perKeyBytes, slots, perKey, maxWait, time.Second, 1, log)
		var totalSlots, totalBytes atomic.Int64
		heldSlots := make([]atomic.Int64, keys)
		heldBytes := make([]atomic.Int64, keys)
		var wg sync.WaitGroup
		var bad atomic.Value
		drainAt := -1
		if rng.IntN(3) == 0 {
			drainAt = rng.IntN(40)
		}
		for i := range 40 {
			if i == drainAt {
				g.drain()
			}
			k := rng.IntN(keys)
			key := fmt.Sprint("key", k)
			export := rng.IntN(4) != 0
			charge := int64(1 + rng.IntN(int(maxBytes)))
			if rng.IntN(2) == 0 { // small: the slots, not the bytes, are short
				charge = int64(1 + rng.IntN(int(maxBytes/10)))
			}
			n := min(charge, maxBytes)
			kn := min(n, perKeyBytes)
			hold := time.Duration(rng.IntN(2000)) * time.Microsecond
			giveUp := time.Duration(-1)
			if rng.IntN(4) == 0 {
				giveUp = time.Duration(rng.IntN(3000)) * time.Microsecond
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				if giveUp >= 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, giveUp)
					defer cancel()
				}
				var waited bool
				release, err := g.admit(ctx, g.waitUntil(), key, charge, export, &waited)
				if err != nil {
					c := connect.CodeOf(err)
					switch {
					case c == connect.CodeDeadlineExceeded || c == connect.CodeCanceled:
					case c == connect.CodeUnavailable && errors.Is(err, errShuttingDown):
					case c == connect.CodeResourceExhausted && (errors.Is(err, errKeyQueueWait) || errors.Is(err, errQueueWait)),
						c == connect.CodeUnavailable && (errors.Is(err, errKeySlotWait) || errors.Is(err, errSlotWait)):
						for _, b := range bounds {
							if errors.Is(err, b) {
								v, _ := refusedAt.LoadOrStore(b, new(atomic.Int64))
								v.(*atomic.Int64).Add(1)
							}
						}
						if !export && (errors.Is(err, errKeySlotWait) || errors.Is(err, errSlotWait)) {
							bad.Store(fmt.Sprintf("an append refused waiting for a slot: %v", err))
						}
					default:
						bad.Store(fmt.Sprintf("admit = %v", err))
					}
					return
				}
				if b := heldBytes[k].Add(kn); b > perKeyBytes {
					bad.Store(fmt.Sprintf("key %d holds %d bytes, its share is %d", k, b, perKeyBytes))
				}
				if b := totalBytes.Add(n); b > maxBytes {
					bad.Store(fmt.Sprintf("%d bytes held, the bound is %d", b, maxBytes))
				}
				if export {
					if n := heldSlots[k].Add(1); n > perKey {
						bad.Store(fmt.Sprintf("key %d holds %d slots, its share is %d", k, n, perKey))
					}
					if n := totalSlots.Add(1); n > slots {
						bad.Store(fmt.Sprintf("%d slots held, the server has %d", n, slots))
					}
				}
				time.Sleep(hold)
				if export {
					totalSlots.Add(-1)
					heldSlots[k].Add(-1)
				}
				totalBytes.Add(-n)
				heldBytes[k].Add(-kn)
				release()
				release() // a second call gives nothing back twice
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute): // a watchdog, not a measure: the round takes milliseconds
			t.Fatalf("seed %d (slots %d, share %d, bytes %d, share %d, %d keys, maxWait %s): requests still unanswered after 2 minutes (deadlock, or a share not given back): %+v",
				seed, slots, perKey, maxBytes, perKeyBytes, keys, maxWait, g.stats())
		}
		if b := bad.Load(); b != nil {
			t.Fatalf("seed %d (slots %d, share %d, bytes %d, share %d, %d keys, maxWait %s): %s", seed, slots, perKey, maxBytes, perKeyBytes, keys, maxWait, b)
		}
		if st := g.stats(); st.Waiting != 0 || st.ExportsWaiting != 0 || st.ExportsWaitingForKey != 0 || st.ExportsInProgress != 0 || st.HeldBytes != 0 {
			t.Fatalf("seed %d: after every request ended: %+v", seed, st)
		}
		checkAllFree(t, g)
	}
	for _, b := range bounds {
		v, _ := refusedAt.Load(b)
		if v == nil && !testing.Short() {
			t.Errorf("no request refused past maxWait naming %q in %d rounds: the test misses that wait", b, rounds)
		} else if v != nil {
			t.Logf("refused past maxWait naming %q: %d", b, v.(*atomic.Int64).Load())
		}
	}
}
