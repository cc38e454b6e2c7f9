package rpc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// TestNoWaiterAdmittedOnceShutdownBegan: a request waiting for room when
// the server begins to shut down is answered unavailable, even when room
// is freed at that very moment (as when the shutdown's own refusals give
// back what waiting exports held). CI saw a native append admitted in that
// window, which TestShutdownAnswersWaitersAtOnce then found appended.
// Each of the four waits of an export in their order (its key's bytes,
// its key's slot, the server's bytes, the server's slot) and an append's
// two; a waiter holding what comes before its wait gives it all back,
// once: afterwards every byte, slot and share is free.
func TestNoWaiterAdmittedOnceShutdownBegan(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	admit := func(g *inflight, key string, n int64, export bool) (func(), error) {
		var w bool
		return g.admit(context.Background(), time.Time{}, key, n, export, &w)
	}
	type request struct {
		key    string
		n      int64
		export bool
	}
	for _, c := range []struct {
		what               string
		max, perKey, slots int64 // a key's share of slots: 1
		fill, wait         request
	}{
		{"an append, for bytes of its key's share", 100, 60, 1, request{"a", 60, false}, request{"a", 60, false}},
		{"an append, for bytes of the server's bound", 100, 100, 1, request{"a", 100, false}, request{"b", 100, false}},
		{"an export, for bytes of its key's share", 100, 60, 2, request{"a", 60, true}, request{"a", 60, true}},
		{"an export, for a slot of its key's share (holding its key's bytes)", 100, 100, 2, request{"a", 10, true}, request{"a", 10, true}},
		{"an export, for bytes of the server's bound (holding its key's bytes and slot)", 100, 100, 2, request{"a", 100, false}, request{"b", 100, true}},
		{"an export, for a server's slot (holding its key's bytes and slot, and the server's bytes)", 100, 100, 1, request{"a", 10, true}, request{"b", 10, true}},
	} {
		t.Run(c.what, func(t *testing.T) {
			admitted := 0
			const rounds = 300
			for range rounds {
				g := newInflight(c.max, c.perKey, c.slots, 1, 0, time.Second, 1, log)
				release, err := admit(g, c.fill.key, c.fill.n, c.fill.export)
				if err != nil {
					t.Fatal(err)
				}
				errc := make(chan error, 1)
				go func() {
					rel, err := admit(g, c.wait.key, c.wait.n, c.wait.export)
					if rel != nil {
						rel()
						rel()
					}
					errc <- err
				}()
				for g.waiting.Load() == 0 {
					time.Sleep(10 * time.Microsecond)
				}
				g.drain()
				release()
				err = <-errc
				if err == nil {
					admitted++
				} else if connect.CodeOf(err) != connect.CodeUnavailable {
					t.Fatalf("waiter at shutdown = %v, want unavailable", err)
				}
				if st := g.stats(); st.Waiting != 0 || st.ExportsWaiting != 0 || st.ExportsWaitingForKey != 0 || st.ExportsInProgress != 0 || st.HeldBytes != 0 {
					t.Fatalf("after the waiter was answered and the request in progress ended: %+v", st)
				}
				checkAllFree(t, g)
				if t.Failed() {
					return
				}
			}
			if admitted > 0 {
				t.Errorf("%d of %d requests waiting (%s) when the shutdown began were admitted, want none (answered unavailable, shutting down)", admitted, rounds, c.what)
			}
		})
	}
}
