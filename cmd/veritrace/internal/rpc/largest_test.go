package rpc

import (
	"context"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/policy"
)

// The largest request the API accepts fits in one storage transaction:
// 1,000 spans with every index term the RPC layer makes (session, subject,
// three version references, two models, error), both at the request byte
// limit and at the size that keeps each envelope in Badger's LSM tree (the
// most transaction bytes per span); and three such requests at once.
func TestLargestValidRequestFits(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, 0)
	c := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	var refs v1.VersionRefs
	for i, k := range []v1.VersionKind{v1.VersionKind_VERSION_KIND_PROMPT, v1.VersionKind_VERSION_KIND_POLICY, v1.VersionKind_VERSION_KIND_PIPELINE} {
		r, err := c.ingest.RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{Kind: k, Name: "n", Label: "l", Content: []byte{byte(i)}, MediaType: "text/plain"}))
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			refs.Prompt = r.Msg.GetId()
		case 1:
			refs.Policy = r.Msg.GetId()
		case 2:
			refs.Pipeline = r.Msg.GetId()
		}
	}
	batch := func(seq, size int) *v1.AppendSpansRequest {
		req := &v1.AppendSpansRequest{}
		for i := 0; i < 1000; i++ {
			sp := testSpan(0)
			sp.TraceId[0], sp.TraceId[1] = byte(seq), byte(i>>8)
			sp.SpanId[6], sp.SpanId[7] = byte(i>>8), byte(i)
			sp.Versions = &refs
			sp.Model.ResponseModel = "gpt-4o-2026-01-01"
			sp.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR}
			sp.SubjectId, sp.SessionId = "subject-"+strings.Repeat("s", 20), "session-1"
			sp.Content.InputMessages[0].Parts[0].Part = &v1.MessagePart_Text{Text: ""}
			pad := size - proto.Size(sp)
			sp.Content.InputMessages[0].Parts[0].Part = &v1.MessagePart_Text{Text: strings.Repeat("x", max(pad-3, 0))}
			req.Spans = append(req.Spans, sp)
		}
		return req
	}
	limit := batch(1, 4000)
	if n := proto.Size(limit); n > DefaultMaxRequestBytes || n < DefaultMaxRequestBytes*9/10 {
		t.Fatalf("request of %d bytes, want just under %d", n, DefaultMaxRequestBytes)
	}
	if _, err := c.ingest.AppendSpans(ctx, connect.NewRequest(limit)); err != nil {
		t.Fatalf("AppendSpans(1000 spans at the byte limit) = %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.ingest.AppendSpans(ctx, connect.NewRequest(batch(10+r, 780)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("AppendSpans(1000 spans with LSM-resident envelopes) = %v", err)
		}
	}
}
