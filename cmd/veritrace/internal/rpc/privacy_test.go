package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/dgraph-io/badger/v4"
	"golang.org/x/crypto/hkdf"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// Issue 9, item 2: after a subject is erased, nothing the server keeps or
// answers names it. The subject is searched, exported, aggregated, held
// (by subject and by one of its sessions, released), looked up in the
// access log, then erased; afterwards every RPC answer (GetEntry of every
// entry, ListAccessLog, ListHolds, GetErasure, ListErasures, QueryTraces,
// an export of everything) and every stored key and value of both Badger
// databases, every version Badger still holds included, and the bytes of
// every file of the data directory, are searched for the subject id and
// the session id.
func TestErasedSubjectLeavesNoIdentifier(t *testing.T) {
	const subject, session = "subject-7f3a9c5e", "session-7f3a9c5e"
	s := startServer(t, 0)
	ctx := context.Background()
	app := s.clients("connect", "", s.key(t, policy.Ingester, "default"))
	aud := s.clients("connect", "", s.key(t, policy.Auditor, "default"))
	co := s.clients("connect", "", s.key(t, policy.ComplianceOfficer, "default"))
	var spans []*v1.Span
	for i := range 4 {
		sp := testSpan(i)
		sp.SubjectId, sp.SessionId = subject, session
		spans = append(spans, sp)
	}
	other := testSpan(20)
	other.SubjectId, other.SessionId = "someone-else", "another-session"
	spans = append(spans, other)
	if _, err := app.ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: spans})); err != nil {
		t.Fatal(err)
	}

	// What an auditor and a compliance officer do while the subject exists.
	for _, q := range []*v1.TraceQuery{{SubjectId: subject}, {SessionId: session}} {
		if _, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: q})); err != nil {
			t.Fatal(err)
		}
		if _, err := readBundle(ctx, aud, q, 0); err != nil {
			t.Fatal(err)
		}
	}
	var holds []string
	for _, sc := range []*v1.HoldScope{{SubjectId: subject}, {SessionId: session}} {
		h, err := co.retention.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: sc, CaseRef: "CASE-1", Reason: "litigation"}))
		if err != nil {
			t.Fatal(err)
		}
		if h.Msg.GetHold().GetScope().GetPseudonym() == "" {
			t.Errorf("PlaceHold(%v) answers no pseudonym", sc)
		}
		holds = append(holds, h.Msg.GetHold().GetId())
	}
	listed, err := co.retention.ListHolds(ctx, connect.NewRequest(&v1.ListHoldsRequest{}))
	if err != nil || len(listed.Msg.GetHolds()) != 2 || listed.Msg.GetHolds()[0].GetScope().GetSubjectId() != subject {
		t.Fatalf("ListHolds() before the erasure = %v, %v; want the subject shown", listed, err)
	}
	// The access records of the subject, found by its pseudonym.
	mine, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: subject}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mine.Msg.GetEntries()); n != 3 { // query, export, hold
		t.Errorf("ListAccessLog(subject) = %d records, want 3: %v", n, mine.Msg.GetEntries())
	}
	for _, id := range holds {
		if _, err := co.retention.ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: id, Reason: "case closed"})); err != nil {
			t.Fatal(err)
		}
	}
	er, err := co.retention.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "dsr-1", SubjectId: subject, LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}))
	if err != nil || len(er.Msg.GetErasure().GetErased()) != 4 {
		t.Fatalf("Erase() = %v, %v", er, err)
	}

	// Every answer, after the erasure.
	ids := [][]byte{[]byte(subject), []byte(session)}
	check, log := answersNameNone(t, ctx, s, aud, co, ids, "the erasure")
	if !strings.Contains(protojson.Format(log.Msg), "subject=pseudonym:") {
		t.Errorf("the access log names no subject by its pseudonym")
	}
	after, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{SubjectId: subject}))
	if err != nil || len(after.Msg.GetEntries()) != 0 {
		t.Errorf("ListAccessLog(erased subject) = %v, %v; want nothing: its pseudonym key is gone", after, err)
	}
	ge, err := co.retention.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "dsr-1"}))
	if err != nil {
		t.Fatal(err)
	}
	check("GetErasure", ge.Msg)
	everything := &v1.TraceQuery{From: timestamppb.New(time.Unix(0, 0)), To: timestamppb.New(time.Now().Add(24 * time.Hour))}
	for _, q := range []*v1.TraceQuery{everything, {SubjectId: subject}} {
		b, err := readBundle(ctx, aud, q, 0)
		if q.GetSubjectId() != "" {
			continue // what the auditor asked for is in the bundle's selector: the auditor's copy
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if bytes.Contains(b, id) {
				t.Errorf("an export of everything names %q after the erasure", id)
			}
		}
	}

	// Every store, after a clean close.
	s.stop()
	// The control: what a hold's state keeps in the clear (its release
	// reason) is found, so the scan reads what it must.
	scanStores(t, s.dir, s.keys, ids, []byte("case closed"))
}

// answersNameNone returns a check that fails if an answer names one of
// ids, having applied it to what an auditor and a compliance officer get
// without naming anyone: every entry, the access log (returned), every
// hold (each must show its scope erased, with its pseudonym), the
// erasures and a query of all traces. after says what came before, for
// the failures.
func answersNameNone(t *testing.T, ctx context.Context, s *testServer, aud, co clients, ids [][]byte, after string) (func(what string, m proto.Message), *connect.Response[v1.ListAccessLogResponse]) {
	t.Helper()
	check := func(what string, m proto.Message) {
		t.Helper()
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := protojson.Marshal(m)
		for _, id := range ids {
			if bytes.Contains(b, id) || bytes.Contains(j, id) {
				t.Errorf("%s names %q after %s: %s", what, id, after, j)
			}
		}
	}
	size, err := s.l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for i := range size {
		e, err := aud.ledger.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: i}))
		if err != nil {
			t.Fatalf("GetEntry(%d) = %v", i, err)
		}
		check("GetEntry", e.Msg)
	}
	log, err := aud.ledger.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{PageSize: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	check("ListAccessLog", log.Msg)
	hs, err := co.retention.ListHolds(ctx, connect.NewRequest(&v1.ListHoldsRequest{All: true}))
	if err != nil {
		t.Fatal(err)
	}
	check("ListHolds", hs.Msg)
	for _, h := range hs.Msg.GetHolds() {
		if !h.GetScope().GetErased() || h.GetScope().GetPseudonym() == "" {
			t.Errorf("hold %s after %s: scope %v; want erased, with its pseudonym", h.GetId(), after, h.GetScope())
		}
	}
	le, err := co.retention.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	check("ListErasures", le.Msg)
	qt, err := aud.audit.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: &v1.TraceQuery{}}))
	if err != nil {
		t.Fatal(err)
	}
	check("QueryTraces", qt.Msg)
	return check, log
}

// scanStores fails if any of ids is in a key or value of either Badger
// database (every version Badger holds, deleted and superseded ones
// included, read through Badger's encryption) or in the bytes of any file
// of the data directory; and if control is in none of the databases' keys
// and values.
func scanStores(t *testing.T, dir string, keys *ledger.Keys, ids [][]byte, control []byte) {
	t.Helper()
	bkey := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, keys.Master, nil, []byte("veritrace badger v1")), bkey); err != nil {
		t.Fatal(err)
	}
	controlFound := false
	for _, name := range []string{ledger.LogDir, ledger.KeyDir} {
		db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, name)).WithEncryptionKey(bkey).WithIndexCacheSize(16 << 20).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, PrefetchValues: false})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
				item := it.Item()
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				controlFound = controlFound || bytes.Contains(v, control)
				for _, id := range ids {
					if bytes.Contains(item.Key(), id) || bytes.Contains(v, id) {
						t.Errorf("%s: key %x (version %d, deleted %v) holds %q", name, item.Key(), item.Version(), item.IsDeletedOrExpired(), id)
					}
				}
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("%s: no keys read", name)
		}
	}
	if !controlFound {
		t.Errorf("the control %q is in no key or value: the scan reads nothing it should", control)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if bytes.Contains(b, id) {
				t.Errorf("file %s holds %q", path, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
