package retention

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/veritrace/veritrace/ledger/format"
)

var errKilled = errors.New("killed")

// An erasure whose plan is stored in many chunks (planChunk lowered) is
// interrupted at each point of storing and carrying it out: between two
// steps of storing its first chunks (no header yet: nothing done, and the
// chunks left are dropped by Resume; asking again erases), between the
// stored plan and its first tombstone, and between two steps of storing
// the finished plan (the header still names the previous generation).
// Each time the restart's Resume, or asking again, finishes it with every
// list whole: what the tombstones name, the receipt and GetErasure agree.
func TestErasurePlanInterruptedAnywhereIsFinished(t *testing.T) {
	old := planChunk
	planChunk = 3
	t.Cleanup(func() { planChunk, testHookPlanChunks, testHookBeforeCommit = old, nil, nil })
	for _, at := range []string{"first chunks", "before tombstone", "done chunks"} {
		t.Run(at, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.heldSubject(t, "dana", 20) // 20 held, 1 erased
			e.appendSubject(t, "dana", 12, 7)
			req := ErasureRequest{ID: "req-crash", Subject: "dana", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}
			steps, doneSteps := 0, 0
			testHookPlanChunks = func(er *Erasure) error {
				steps++
				if er.State == "done" {
					doneSteps++
				}
				if (at == "first chunks" && steps == 2) || (at == "done chunks" && doneSteps == 2) {
					return errKilled
				}
				return nil
			}
			testHookBeforeCommit = func(*Erasure, int) error {
				if at == "before tombstone" {
					return errKilled
				}
				return nil
			}
			if _, err := e.s.Erase(ctx, "default", req); !errors.Is(err, errKilled) {
				t.Fatalf("Erase() = %v, want the kill", err)
			}
			testHookPlanChunks, testHookBeforeCommit = nil, nil
			e.l.Close()
			e.open(t) // the restart: serve runs Resume
			if err := e.s.Resume(ctx); err != nil {
				t.Fatalf("Resume() = %v", err)
			}
			if u := e.s.Unfinished(); len(u) != 0 {
				t.Errorf("Unfinished() = %v", u)
			}
			if at == "first chunks" {
				names, _ := e.l.StateNames(ctx, "default", statePlanPart)
				if len(names) != 0 {
					t.Errorf("chunks of a plan never stored are left after Resume: %v", names)
				}
			}
			er, err := e.s.Erase(ctx, "default", req)
			if err != nil || er.State != "done" {
				t.Fatalf("Erase(again) = %+v, %v", er, err)
			}
			if len(er.Erase) != 13 || len(er.Held) != 20 {
				t.Errorf("the plan erased %d and held %d entries, want 13 and 20", len(er.Erase), len(er.Held))
			}
			var erased, held int
			for _, ts := range receiptTombstones(t, e, er) {
				erased, held = erased+len(ts.Erased), held+len(ts.Held)
			}
			if erased != 13 || held != 20 {
				t.Errorf("the receipt's tombstones name %d erased and %d held, want 13 and 20", erased, held)
			}
			for _, i := range er.Erase {
				if en, err := e.l.GetEntry(ctx, "default", i); err != nil || !en.Erased || en.ErasedBy == nil {
					t.Fatalf("entry %d: not erased by a tombstone (%v)", i, err)
				}
			}
			// GetErasure's pages read the chunks.
			var pagedErase []uint64
			var pagedHeld []format.HeldEntry
			for from := uint64(0); ; from += 4 {
				pg, ne, nh, err := e.s.ErasurePage(ctx, "default", req.ID, from, 4)
				if err != nil || ne != 13 || nh != 20 {
					t.Fatalf("ErasurePage(%d) = %d, %d, %v", from, ne, nh, err)
				}
				if len(pg.Erase)+len(pg.Held) == 0 {
					break
				}
				pagedErase, pagedHeld = append(pagedErase, pg.Erase...), append(pagedHeld, pg.Held...)
			}
			if len(pagedErase) != 13 || len(pagedHeld) != 20 || pagedErase[12] != er.Erase[12] || pagedHeld[19] != er.Held[19] {
				t.Errorf("pages: %d erased, %d held; want the plan's 13 and 20", len(pagedErase), len(pagedHeld))
			}
			names, _ := e.l.StateNames(ctx, "default", statePlanPart)
			for _, n := range names {
				if !strings.HasPrefix(n, genPrefix(req.ID, er.Lists.Gen)) {
					t.Errorf("a chunk of another generation is left: %q (plan at generation %d)", n, er.Lists.Gen)
				}
			}
		})
	}
}
