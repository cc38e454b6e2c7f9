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
// Bytes and export slots alike, the server's bound and a key's share.
func TestNoWaiterAdmittedOnceShutdownBegan(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		what  string
		slots int64 // the server's export slots (a key's share: 1)
		wait  func(g *inflight) (func(), error)
		fill  func(g *inflight) func()
	}{
		{"bytes of the server's bound", 1, func(g *inflight) (func(), error) {
			var w bool
			return g.acquire(context.Background(), time.Time{}, "b", 100, &w)
		}, func(g *inflight) func() {
			var w bool
			rel, _ := g.acquire(context.Background(), time.Time{}, "a", 100, &w)
			return rel
		}},
		{"bytes of a key's share", 1, func(g *inflight) (func(), error) {
			var w bool
			return g.acquire(context.Background(), time.Time{}, "a", 60, &w)
		}, func(g *inflight) func() {
			var w bool
			rel, _ := g.acquire(context.Background(), time.Time{}, "a", 60, &w)
			return rel
		}},
		{"an export slot", 1, func(g *inflight) (func(), error) {
			var w bool
			return g.exportSlot(context.Background(), time.Time{}, "b", &w)
		}, func(g *inflight) func() {
			var w bool
			rel, _ := g.exportSlot(context.Background(), time.Time{}, "a", &w)
			return rel
		}},
		{"an export slot of a key's share", 2, func(g *inflight) (func(), error) {
			var w bool
			return g.exportSlot(context.Background(), time.Time{}, "a", &w)
		}, func(g *inflight) func() {
			var w bool
			rel, _ := g.exportSlot(context.Background(), time.Time{}, "a", &w)
			return rel
		}},
	} {
		t.Run(c.what, func(t *testing.T) {
			admitted := 0
			const rounds = 300
			for range rounds {
				g := newInflight(100, 100, c.slots, 1, 0, time.Second, 1, log)
				release := c.fill(g)
				errc := make(chan error, 1)
				go func() {
					rel, err := c.wait(g)
					if rel != nil {
						rel()
					}
					errc <- err
				}()
				for g.waiting.Load() == 0 {
					time.Sleep(10 * time.Microsecond)
				}
				g.drain()
				release()
				err := <-errc
				if err == nil {
					admitted++
				} else if connect.CodeOf(err) != connect.CodeUnavailable {
					t.Fatalf("waiter at shutdown = %v, want unavailable", err)
				}
			}
			if admitted > 0 {
				t.Errorf("%d of %d requests waiting for %s when the shutdown began were admitted, want none (answered unavailable, shutting down)", admitted, rounds, c.what)
			}
		})
	}
}
