package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// busyRetention answers every Erase unavailable, as the server does for
// an erasure beside another plan, and keeps the request id it was sent.
type busyRetention struct {
	veritracev1connect.UnimplementedRetentionServiceHandler
	got string
}

func (b *busyRetention) Erase(_ context.Context, req *connect.Request[v1.EraseRequest]) (*connect.Response[v1.EraseResponse], error) {
	b.got = req.Msg.GetRequestId()
	return nil, connect.NewError(connect.CodeUnavailable, errors.New("erasure or sweep dsr-1 has committed to erase 3 of the selected entries and has not destroyed their keys yet; nothing was done: ask again with the same request id once it is done (GetErasure dsr-1)"))
}

// TestAttack20EraseBusyLosesTheRequestID: `veritrace erase` without
// --request-id makes one up; when the server refuses the erasure with
// unavailable ("ask again with the same request id"), or the plan was
// stored before the refusal (docs/RETENTION.md, "An erasure beside
// another plan"), the officer must be able to ask again with that id.
// The CLI prints neither the id nor anything that names it: asking again
// makes a new request, and the stored one is left to the takeover.
func TestAttack20EraseBusyLosesTheRequestID(t *testing.T) {
	h := &busyRetention{}
	_, handler := veritracev1connect.NewRetentionServiceHandler(h)
	srv := httptest.NewServer(handler)
	defer srv.Close()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("vt_test_key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	err := run(context.Background(), []string{"erase", "--addr", srv.URL, "--api-key-file", keyFile,
		"--subject", "s", "--legal-basis", "b", "--reason", "r"}, &out)
	if err == nil || h.got == "" {
		t.Fatalf("erase against a busy server = %v (server saw request id %q)", err, h.got)
	}
	if shown := err.Error() + out.String(); !strings.Contains(shown, h.got) {
		t.Errorf("erase refused unavailable: the CLI showed %q and %q, not the request id %s it made up, which the server says to ask again with", err, out.String(), h.got)
	}
}
