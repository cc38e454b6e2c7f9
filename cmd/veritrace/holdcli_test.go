package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// holdServer answers PlaceHold and ListHolds with one hold.
type holdServer struct {
	veritracev1connect.UnimplementedRetentionServiceHandler
	hold *v1.Hold
}

func (s *holdServer) PlaceHold(context.Context, *connect.Request[v1.PlaceHoldRequest]) (*connect.Response[v1.PlaceHoldResponse], error) {
	return connect.NewResponse(&v1.PlaceHoldResponse{Hold: s.hold, Index: 7}), nil
}

func (s *holdServer) ListHolds(context.Context, *connect.Request[v1.ListHoldsRequest]) (*connect.Response[v1.ListHoldsResponse], error) {
	return connect.NewResponse(&v1.ListHoldsResponse{Holds: []*v1.Hold{s.hold}}), nil
}

// holdCLI runs the CLI against a server that answers with hold h, and
// returns what it printed and its error.
func holdCLI(t *testing.T, h *v1.Hold, args ...string) (string, error) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("vtk_0123456789abcdef_"+strings.Repeat("A", 43)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, handler := veritracev1connect.NewRetentionServiceHandler(&holdServer{hold: h})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	var out strings.Builder
	err := run(context.Background(), append(args, "--addr", srv.URL, "--api-key-file", keyFile), &out)
	return out.String(), err
}

func testHold() *v1.Hold {
	return &v1.Hold{Id: "3f1c2a4e-8a51-5d0b-9c1e-2b7d14a9e0c3", RequestId: "hold-case-7", CaseRef: "CASE-7", Reason: "litigation",
		PlacedBy: "0123456789abcdef", PlacedAt: timestamppb.New(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)),
		Scope: &v1.HoldScope{Tenant: true}}
}

// `hold place` makes up a request id and, on an error, says to ask again
// with it ("veritrace hold list shows it once placed"); a request's hold
// id is a UUID derived from the request id that the operator cannot work
// out, so the list shows each hold's request id, last (attack 24).
func TestHoldListShowsRequestID(t *testing.T) {
	h := testHold()
	out, err := holdCLI(t, h, "hold", "list", "--all")
	if err != nil {
		t.Fatalf("hold list = %v", err)
	}
	if want := "3f1c2a4e-8a51-5d0b-9c1e-2b7d14a9e0c3\ttenant\tcase CASE-7\tactive\t\"litigation\"\trequest hold-case-7\n"; out != want {
		t.Errorf("hold list of a hold placed with request id hold-case-7 printed\n%q, want\n%q", out, want)
	}
	h.RequestId = ""
	if out, err := holdCLI(t, h, "hold", "list", "--all"); err != nil || strings.Contains(out, "request") {
		t.Errorf("hold list of a hold placed without a request id = %q, %v; want no request column", out, err)
	}
}

// A hold request asked again after the hold it placed was released (a
// lost answer, retried after another officer released the hold) is
// answered with that hold, released. `hold place` says plainly that the
// hold is not in force, and by whom and when it was released, and exits
// with exitHoldReleased, so that neither a reader nor a script takes the
// data for held (attack 24). A hold in force is "placed".
func TestHoldPlaceAnsweredWithReleasedHold(t *testing.T) {
	args := []string{"hold", "place", "--whole-tenant", "--case", "CASE-7", "--reason", "litigation", "--request-id", "hold-case-7"}
	out, err := holdCLI(t, testHold(), args...)
	if err != nil || out != "placed hold 3f1c2a4e-8a51-5d0b-9c1e-2b7d14a9e0c3 (case CASE-7, request hold-case-7), recorded at index 7\n" {
		t.Errorf("hold place answered with a hold in force = %q, %v", out, err)
	}
	h := testHold()
	h.ReleasedAt, h.ReleasedBy, h.ReleaseReason = timestamppb.New(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)), "fedcba9876543210", "case closed"
	out, err = holdCLI(t, h, args...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitHoldReleased || !strings.Contains(err.Error(), "released at 2026-11-21T09:00:00Z") {
		t.Errorf("hold place answered with a released hold: error %v, want exit status %d naming the release", err, exitHoldReleased)
	}
	want := `hold 3f1c2a4e-8a51-5d0b-9c1e-2b7d14a9e0c3 (case CASE-7) was placed by request hold-case-7 at 2026-11-20T09:00:00Z by key 0123456789abcdef, and released at 2026-11-21T09:00:00Z by key fedcba9876543210 ("case closed"): it is NOT in force` + "\n"
	if out != want {
		t.Errorf("hold place answered with a released hold printed\n%q, want\n%q", out, want)
	}
}
