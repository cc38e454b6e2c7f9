package rpc

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/policy"
)

// authenticated is what the front handler learnt of a request's API key,
// for the interceptor to reuse: a principal for exactly this header.
type authenticated struct {
	header string
	p      *policy.Principal
	keyID  string
}

// frontHandler authenticates a request to a Connect, gRPC or gRPC-Web
// procedure before anything reads its body: connect-go reads, inflates and
// decodes a unary request before any interceptor runs, so without it a
// caller without a key could make the server inflate and decode up to the
// read limit. A request that fails authentication is refused here exactly
// as the interceptor refuses it (recorded, counted by the limiter of
// failed authentications) and answered in its protocol. The interceptor
// remains the one place that authorises a procedure; it reuses the
// principal found here. Paths outside the access table (health,
// reflection, unknown procedures, which connect-go answers without reading
// a body) pass untouched, and so does OTLP/HTTP, whose handler
// authenticates before reading a body and answers in OTLP's own form.
func (a *authInterceptor) frontHandler(next http.Handler) http.Handler {
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := rules[r.URL.Path]; !ok || r.URL.Path == otlp.TracesPath || r.URL.Path == otlp.LogsPath {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		ev := &accessEvent{procedure: r.URL.Path, peer: r.RemoteAddr, time: a.now()}
		c := call{procedure: r.URL.Path, header: r.Header, peer: r.RemoteAddr}
		p, err := a.authenticate(ctx, c, ev)
		if err != nil {
			errw.Write(w, r, err)
			return
		}
		au := &authenticated{header: r.Header.Get("Authorization"), p: p, keyID: ev.keyID}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, authenticatedKey, au)))
	})
}

// errInflateLimit ends the inflation of a message past the read limit.
var errInflateLimit = errors.New("message inflates past the read limit")

// limitedGzip is the gzip decompressor of the Connect handlers: it inflates
// at most max+1 bytes of a message, then fails. connect-go's own reads on
// past the limit to the end of the message to report its size, so a small
// gzip bomb would cost up to the size of the bomb's output, not the limit.
type limitedGzip struct {
	zr  *gzip.Reader
	max int64
	n   int64
}

func newLimitedGzip(max int) connect.Decompressor { return &limitedGzip{max: int64(max)} }

func (d *limitedGzip) Read(p []byte) (int, error) {
	if d.zr == nil {
		return 0, errors.New("gzip: no input")
	}
	if d.n > d.max {
		return 0, fmt.Errorf("%w of %d bytes", errInflateLimit, d.max)
	}
	if left := d.max + 1 - d.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := d.zr.Read(p)
	d.n += int64(n)
	return n, err
}

func (d *limitedGzip) Reset(r io.Reader) error {
	d.n = 0
	if d.zr == nil {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		d.zr = zr
		return nil
	}
	return d.zr.Reset(r)
}

func (d *limitedGzip) Close() error {
	if d.zr == nil {
		return nil
	}
	return d.zr.Close()
}

// gzipOption registers limitedGzip for messages of at most readMax bytes.
func gzipOption(readMax int) connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return newLimitedGzip(readMax) },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) })
}
