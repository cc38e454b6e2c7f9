package rpc

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// Shutdown stops the HTTP servers serving h (its own and its OTLP
// handlers'), letting the requests in progress finish while ctx lives.
// First it drains h: requests waiting for room under the in-flight bound
// (appends waiting for bytes, OTLP exports waiting for bytes or a slot),
// which would otherwise wait up to --max-queue-wait, are answered at once
// with unavailable "the server is shutting down" (OTLP/HTTP 503 with
// Retry-After), which clients and OTLP exporters retry, and so are those
// arriving after that would have to wait. Then it shuts the servers down
// (http.Server.Shutdown); if ctx ends first, it closes them, which ends
// the contexts of the requests still in progress, and returns ctx's
// error. Wait says when every request h handles has returned: the ledger
// is closed after that.
func (h *Handler) Shutdown(ctx context.Context, servers ...*http.Server) error {
	h.s.inflight.drain()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Go(func() { errs[i] = srv.Shutdown(ctx) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		for _, srv := range servers {
			srv.Close()
		}
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}

// Wait returns once no request h serves (its own handler's or its OTLP
// handlers') is being handled, or ctx's error once ctx ends first.
func (h *Handler) Wait(ctx context.Context) error { return h.active.wait(ctx) }

// activeRequests counts the requests being handled.
type activeRequests struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0
}

// count counts next's requests while they are handled.
func (a *activeRequests) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		if a.n == 0 {
			a.idle = make(chan struct{})
		}
		a.n++
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			if a.n--; a.n == 0 {
				close(a.idle)
			}
			a.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

func (a *activeRequests) wait(ctx context.Context) error {
	a.mu.Lock()
	if a.n == 0 {
		a.mu.Unlock()
		return nil
	}
	idle := a.idle
	a.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
