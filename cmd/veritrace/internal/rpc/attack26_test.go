package rpc

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"

	"github.com/veritrace/veritrace/policy"
)

// a26Counter counts the bytes the client's transport took from it.
type a26Counter struct {
	r io.Reader
	n atomic.Int64
}

func (c *a26Counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// zeros is an endless body of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAttack26GRPCExportDeclaringMoreThanMaxIsReadToItsEnd: an
// uncompressed gRPC export whose prefix declares 4 GiB (more than
// --otlp-max-bytes) is charged --otlp-max-bytes, holds an export slot,
// and then has its body read on: connect-go discards the declared length
// (io.CopyN to io.Discard) before answering resource_exhausted, and the
// declaredBody lets it, since its left is the declared length, not the
// limit. The read is bounded by what the prefix declares, not by
// --otlp-max-bytes: a client sending fast keeps the slot and the charge
// for 4 GiB of upload. The server must refuse as soon as it has read the
// limit (or at the prefix).
func TestAttack26GRPCExportDeclaringMoreThanMaxIsReadToItsEnd(t *testing.T) {
	const limit = 1 << 20
	s := startServerWith(t, Options{OTLP: OTLPOptions{MaxBytes: limit}})
	token := s.key(t, policy.Ingester, "default")
	const sent = 64 << 20
	body := &a26Counter{r: io.MultiReader(
		bytes.NewReader(grpcMessage(0, 0xFFFFFFFF, nil)),
		io.LimitReader(zeros{}, sent))}
	st, m := rawGRPC(t, s, token, body)
	got := body.n.Load()
	t.Logf("grpc-status %s %q after the server took %d bytes of the body (limit %d)", st, m, got, limit)
	// The client may run ahead of the server by the stream's window.
	if bound := int64(limit + 2*http2StreamWindow + 64<<10); got > bound {
		t.Errorf("the server read %d bytes of an export declaring 4 GiB before refusing it, want at most %d (--otlp-max-bytes and the stream's window): its read is bounded by the declared length, not the limit", got, bound)
	}
	if st != "8" {
		t.Errorf("grpc-status %s, want 8 (resource_exhausted)", st)
	}
}
