package console

// Golden vectors for the console's check of erasure receipts
// (web/src/verify/receipt.ts): receipts of both formats, honest and
// tampered (changed and signed again by the log key, or changed and not
// signed again), each with its tombstone part and the verdict of the Go
// check (audit/bundle.CheckReceipt, what `veritrace verify-receipt` runs)
// on each check. Deterministic: this test regenerates
// web/testdata/receipts.json and fails if the committed file differs.
//
// Regenerate with: go test ./cmd/veritrace/internal/console -run ReceiptVectors -update

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/ledger/format"
)

const receiptsFile = "web/testdata/receipts.json"

type receiptPartVector struct {
	Header  string   `json:"header"` // hex, as every byte field below
	Payload string   `json:"payload"`
	Salt    string   `json:"salt"`
	Proof   []string `json:"proof"`
}

type receiptCase struct {
	Name string `json:"name"`
	// File is the receipt file as `veritrace erase --receipt` writes it.
	File string `json:"file"`
	// Parts are the tombstone entries by log index (decimal), each with
	// its inclusion proof into the receipt's checkpoint.
	Parts map[string]receiptPartVector `json:"parts"`
	// Checks: each check's verdict, "ok", "failed" or "skipped".
	Checks map[string]string `json:"checks"`
	OK     bool              `json:"ok"`
	// Verdict is the report's last line (ReceiptReport.Verdict) with the
	// parts; Offline without them (steps 1 and 2 alone).
	Verdict string `json:"verdict"`
	Offline string `json:"offline"`
}

type receiptVectors struct {
	Comment string        `json:"comment"`
	Key     string        `json:"key"`
	Cases   []receiptCase `json:"cases"`
}

func makeReceiptVectors(t *testing.T) []byte {
	signer, vkey := fixedSigner(t, "veritrace-c0ffee00", "console vectors: log key")
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	const origin, tenant, request = "veritrace-c0ffee00/default", "default", "dsr-2026-118"
	at := time.Date(2026, 11, 22, 1, 2, 3, 456789000, time.UTC)
	// Entries 0 and 1 are spans; entry 2 is the request's one tombstone:
	// entry 0 erased, entry 1 held.
	l0, l1 := tlog.RecordHash([]byte("span 0")), tlog.RecordHash([]byte("span 1"))
	ts := format.Tombstone{Reason: "erasure", RequestID: request, LegalBasis: "GDPR Art. 17(1)(a)", RequestedBy: "0123456789abcdef",
		Erased: []format.TombstoneEntry{{Index: 0, LeafHash: hex.EncodeToString(l0[:])}},
		Held:   []format.HeldEntry{{Index: 1, HoldID: "hold-1", CaseRef: "CASE-7"}}, Part: 1, Parts: 1}
	payload, err := json.Marshal(&ts)
	if err != nil {
		t.Fatal(err)
	}
	salt := bytes.Repeat([]byte{5}, format.SaltSize)
	h := format.Header{Kind: format.KindTombstone, SubKind: format.TombstoneErasure, Tenant: tenant, Index: 2, AppendedAt: at,
		RetentionClass: "records", PrevLeafHash: l1, Commitment: format.Commitment(salt, payload)}
	header := h.Marshal()
	l2 := format.LeafHash(header)
	n01 := tlog.NodeHash(l0, l1)
	root := tlog.NodeHash(n01, l2)
	cp := sign(t, format.CheckpointBody(origin, 3, root), signer)
	part := map[string]receiptPartVector{"2": {Header: hex.EncodeToString(header), Payload: hex.EncodeToString(payload), Salt: hex.EncodeToString(salt), Proof: []string{hex.EncodeToString(n01[:])}}}

	v2 := func() map[string]any {
		return map[string]any{"format": bundle.ReceiptFormatV2, "request_id": request, "origin": origin, "tenant": tenant, "selector": "subject",
			"legal_basis": "GDPR Art. 17(1)(a)", "ticket": "DSR-118", "requested_by": "0123456789abcdef", "requested_at": at, "completed_at": at.Add(time.Second),
			"erased_count": 1, "held_count": 1, "tombstones": []any{map[string]any{"index": 2, "leaf_hash": hex.EncodeToString(l2[:])}}, "checkpoint": cp}
	}
	v1 := func() map[string]any {
		r := v2()
		delete(r, "erased_count")
		delete(r, "held_count")
		delete(r, "tombstones")
		r["format"] = bundle.ReceiptFormatV1
		r["erased"] = ts.Erased
		r["held"] = ts.Held
		r["tombstone_index"], r["tombstone_indexes"] = 2, []uint64{2}
		return r
	}
	file := func(r map[string]any, resign bool, after func(string) string) string {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		sig := sign(t, format.ReceiptSignatureBody(origin, sha256.Sum256(b)), signer)
		s := string(b)
		if after != nil {
			s = after(s)
		}
		return s + "\n" + sig
	}
	edit := func(base func() map[string]any, change func(r map[string]any)) map[string]any {
		r := base()
		change(r)
		return r
	}
	otherLeaf := strings.Repeat("0", 64)
	cases := []receiptCase{
		{Name: "format 2", File: file(v2(), true, nil)},
		{Name: "format 2, erased_count changed and signed again", File: file(edit(v2, func(r map[string]any) { r["erased_count"] = 2 }), true, nil)},
		{Name: "format 2, held_count changed and signed again", File: file(edit(v2, func(r map[string]any) { r["held_count"] = 0 }), true, nil)},
		{Name: "format 2, a part's leaf hash changed and signed again", File: file(edit(v2, func(r map[string]any) {
			r["tombstones"] = []any{map[string]any{"index": 2, "leaf_hash": otherLeaf}}
		}), true, nil)},
		{Name: "format 2, another request id, signed again", File: file(edit(v2, func(r map[string]any) { r["request_id"] = "dsr-other" }), true, nil)},
		{Name: "format 2, a part past the checkpoint, signed again", File: file(edit(v2, func(r map[string]any) {
			r["tombstones"] = []any{map[string]any{"index": 3, "leaf_hash": hex.EncodeToString(l2[:])}}
		}), true, nil)},
		{Name: "format 2, an unknown member, signed again", File: file(edit(v2, func(r map[string]any) { r["note"] = "x" }), true, nil)},
		{Name: "format 2, erased_count changed, not signed again", File: file(v2(), true, func(s string) string {
			return strings.Replace(s, `"erased_count":1`, `"erased_count":2`, 1)
		})},
		{Name: "format 1", File: file(v1(), true, nil)},
		{Name: "format 1, an erased entry's leaf hash changed and signed again", File: file(edit(v1, func(r map[string]any) {
			r["erased"] = []format.TombstoneEntry{{Index: 0, LeafHash: otherLeaf}}
		}), true, nil)},
	}
	for i := range cases {
		c := &cases[i]
		c.Parts = part
		rep := bundle.CheckReceipt([]byte(c.File), verifier, func(index uint64, _ *format.Checkpoint) (*bundle.ReceiptPart, error) {
			return partOf(t, c.Parts, index), nil
		})
		c.OK = rep.OK()
		c.Verdict = rep.Verdict()
		c.Offline = bundle.CheckReceipt([]byte(c.File), verifier, nil).Verdict()
		c.Checks = map[string]string{}
		for _, ch := range rep.Checks {
			switch {
			case ch.Skipped != "":
				c.Checks[ch.Name] = "skipped"
			case ch.OK():
				c.Checks[ch.Name] = "ok"
			default:
				c.Checks[ch.Name] = "failed"
			}
		}
	}
	if !cases[0].OK || !cases[8].OK {
		t.Fatalf("the honest receipts do not verify: %+v", cases[0].Checks)
	}
	b, err := json.MarshalIndent(receiptVectors{Comment: "Generated by go test ./cmd/veritrace/internal/console -run ReceiptVectors -update; do not edit.", Key: vkey, Cases: cases}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func partOf(t *testing.T, parts map[string]receiptPartVector, index uint64) *bundle.ReceiptPart {
	pv, ok := parts[strconv.FormatUint(index, 10)]
	if !ok {
		return &bundle.ReceiptPart{}
	}
	dec := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p := &bundle.ReceiptPart{Header: dec(pv.Header), Payload: dec(pv.Payload), Salt: dec(pv.Salt)}
	for _, h := range pv.Proof {
		p.Proof = append(p.Proof, tlog.Hash(dec(h)))
	}
	return p
}

func TestReceiptVectors(t *testing.T) {
	got := makeReceiptVectors(t)
	if *update {
		if err := os.WriteFile(receiptsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(receiptsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./cmd/veritrace/internal/console -run ReceiptVectors -update and commit the result", receiptsFile)
	}
}
