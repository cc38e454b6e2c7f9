package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

func testKeys(t testing.TB, dir string) *Keys {
	t.Helper()
	k, _, err := LoadOrCreateKeys(KeyPaths{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openTest(t testing.TB, dir string) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), Options{Dir: dir, Keys: testKeys(t, dir), Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return l
}

func span(i int, payload string) Record {
	r := Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprintf("user-%d", i%3), Payload: []byte(payload)}
	r.TraceID[0], r.TraceID[15] = 1, byte(i>>8)
	r.SpanID[0], r.SpanID[7] = byte(i), 1
	r.SpanID[1] = byte(i >> 8)
	return r
}

func version(kind format.VersionKind, name, label, content string) Record {
	r := Record{Kind: format.KindVersion, SubKind: uint8(kind), Version: &VersionName{Name: name, Label: label}, Payload: []byte(content)}
	r.Refs[kind-1] = format.VersionID(kind, name, label, "text/plain", []byte(content))
	return r
}

func mustAppend(t testing.TB, l *Ledger, tenant string, recs ...Record) []Receipt {
	t.Helper()
	rs, err := l.Append(context.Background(), tenant, recs)
	if err != nil {
		t.Fatalf("Append() = %v", err)
	}
	return rs
}

func TestAppendGetRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	v := version(format.VersionPrompt, "support", "v1", "You are helpful.")
	s := span(1, "the model saw this")
	s.Refs = v.Refs
	rs := mustAppend(t, l, "default", v, s)
	if rs[0].Index != 0 || rs[1].Index != 1 || rs[0].Duplicate || rs[1].Duplicate {
		t.Fatalf("Append() receipts = %+v", rs)
	}
	e, err := l.GetEntry(ctx, "default", 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Payload) != "the model saw this" || e.LeafHash != rs[1].LeafHash || e.Header.PrevLeafHash != rs[0].LeafHash {
		t.Errorf("GetEntry(1) = %+v", e)
	}
	if format.Commitment(e.Salt, e.Payload) != e.Header.Commitment {
		t.Error("payload does not match its commitment")
	}
	cp, err := l.Checkpoint(ctx, "default", true)
	if err != nil || cp.Size != 2 {
		t.Fatalf("Checkpoint() = %+v, %v", cp, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openTest(t, dir)
	defer l.Close()
	if n, _ := l.Size(ctx, "default"); n != 2 {
		t.Errorf("Size() after restart = %d, want 2", n)
	}
	cp2, err := l.Checkpoint(ctx, "default", false)
	if err != nil || !bytes.Equal(cp2.Note, cp.Note) {
		t.Errorf("Checkpoint() after restart = %v, %v; want the one signed before", cp2, err)
	}
	rs2 := mustAppend(t, l, "default", span(2, "after restart"))
	if rs2[0].Index != 2 {
		t.Errorf("Append() after restart: index %d, want 2", rs2[0].Index)
	}
	e, err = l.GetEntry(ctx, "default", 2)
	if err != nil || e.Header.PrevLeafHash != rs[1].LeafHash {
		t.Errorf("hash chain across restart: %v, %v", e, err)
	}
}

func TestIdempotency(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	first := mustAppend(t, l, "default", span(1, "a"), span(2, "b"))
	again := mustAppend(t, l, "default", span(2, "b"), span(3, "c"), span(3, "c"))
	if !again[0].Duplicate || again[0].Index != first[1].Index || again[0].LeafHash != first[1].LeafHash {
		t.Errorf("re-append of span 2 = %+v, want the original receipt %+v", again[0], first[1])
	}
	if again[1].Duplicate || again[1].Index != 2 || !again[2].Duplicate || again[2].Index != 2 {
		t.Errorf("receipts = %+v", again)
	}
	_, err := l.Append(ctx, "default", []Record{span(4, "d"), span(1, "changed")})
	var re *RecordError
	if !errors.Is(err, ErrAlreadyExists) || !errors.As(err, &re) || re.Record != 1 {
		t.Fatalf("Append(changed content) = %v, want RecordError 1 / ErrAlreadyExists", err)
	}
	if n, _ := l.Size(ctx, "default"); n != 3 {
		t.Errorf("Size() = %d, want 3: a failed batch wrote something", n)
	}
	if _, err := l.Append(ctx, "default", []Record{span(5, "x"), span(5, "y")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Append(same span twice, different content) = %v, want ErrInvalid", err)
	}
}

func TestVersionsAndRefs(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	p1 := version(format.VersionPrompt, "support", "v1", "A")
	pol := version(format.VersionPolicy, "refunds", "2026-01", "policy text")
	mustAppend(t, l, "default", p1, pol, version(format.VersionPrompt, "support", "v2", "B"), version(format.VersionPipeline, "rag", "1", "{}"))

	// Same name and label, other content: refused.
	_, err := l.Append(ctx, "default", []Record{version(format.VersionPrompt, "support", "v1", "other")})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Index != 0 {
		t.Errorf("Append(support v1 with other content) = %v, want ConflictError at 0", err)
	}
	// A span referencing an unregistered version, or a version of another kind.
	s := span(1, "x")
	s.Refs[format.VersionPrompt-1] = pol.Refs.Ref(format.VersionPolicy)
	_, err = l.Append(ctx, "default", []Record{span(2, "ok"), s})
	var mv *MissingVersionError
	if !errors.As(err, &mv) || mv.Kind != format.VersionPrompt {
		t.Errorf("Append(span with policy id as prompt ref) = %v, want MissingVersionError(prompt)", err)
	}
	if n, _ := l.Size(ctx, "default"); n != 4 {
		t.Errorf("Size() = %d, want 4 (batch with a bad ref must write nothing)", n)
	}
	s.Refs = format.Refs{}
	s.Refs[0], s.Refs[1] = p1.Refs[0], pol.Refs[1]
	mustAppend(t, l, "default", s)
	// A version and a span referencing it in the same batch.
	p3 := version(format.VersionPrompt, "support", "v3", "C")
	s2 := span(3, "y")
	s2.Refs[0] = p3.Refs[0]
	mustAppend(t, l, "default", p3, s2)

	e, err := l.GetVersion(ctx, "default", p1.Refs[0])
	if err != nil || string(e.Payload) != "A" {
		t.Errorf("GetVersion() = %v, %v", e, err)
	}
	var all []VersionInfo
	var cursor []byte
	for {
		vs, next, err := l.ListVersions(ctx, "default", 0, "", cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, vs...)
		if next == nil {
			break
		}
		cursor = next
	}
	var got []string
	for _, v := range all {
		got = append(got, fmt.Sprintf("%s/%s/%s", v.Kind, v.Name, v.Label))
	}
	want := "[prompt/support/v1 prompt/support/v2 prompt/support/v3 policy/refunds/2026-01 pipeline/rag/1]"
	if fmt.Sprint(got) != want {
		t.Errorf("ListVersions pages = %v, want %v", got, want)
	}
	vs, _, _ := l.ListVersions(ctx, "default", format.VersionPrompt, "support", nil, 10)
	if len(vs) != 3 {
		t.Errorf("ListVersions(prompt, support) = %d versions, want 3", len(vs))
	}
}

// TestProofs checks every inclusion proof and every consistency proof for
// every tree size up to 300 against roots computed independently in memory.
func TestProofs(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	const n = 300
	var recs []Record
	for i := 0; i < n; i++ {
		recs = append(recs, span(i, fmt.Sprint("p", i)))
	}
	for i := 0; i < n; i += 37 {
		mustAppend(t, l, "default", recs[i:min(i+37, n)]...)
	}
	// Independent tree: leaf hashes from the stored headers.
	var mem []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = mem[x]
		}
		return out, nil
	})
	roots := []tlog.Hash{format.EmptyRoot}
	leaves := make([]tlog.Hash, n)
	for i := 0; i < n; i++ {
		e, err := l.GetEntry(ctx, "default", uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		leaves[i] = e.LeafHash
		hs, _ := tlog.StoredHashesForRecordHash(int64(i), e.LeafHash, r)
		mem = append(mem, hs...)
		root, _ := tlog.TreeHash(int64(i+1), r)
		roots = append(roots, root)
	}
	for size := uint64(1); size <= n; size++ {
		for i := uint64(0); i < size; i++ {
			p, leaf, _, err := l.InclusionProof(ctx, "default", i, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d) = %v", i, size, err)
			}
			if leaf != leaves[i] {
				t.Fatalf("InclusionProof(%d, %d) leaf = %x, want %x", i, size, leaf, leaves[i])
			}
			if err := tlog.CheckRecord(p, int64(size), roots[size], int64(i), leaf); err != nil {
				t.Fatalf("CheckRecord(%d, %d) = %v", i, size, err)
			}
			if len(p) > 0 {
				p[len(p)/2][0] ^= 1
				if tlog.CheckRecord(p, int64(size), roots[size], int64(i), leaf) == nil {
					t.Fatalf("CheckRecord(%d, %d) accepted a changed proof hash", i, size)
				}
			}
		}
		for old := uint64(1); old <= size; old++ {
			p, _, err := l.ConsistencyProof(ctx, "default", old, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) = %v", old, size, err)
			}
			if err := tlog.CheckTree(p, int64(size), roots[size], int64(old), roots[old]); err != nil {
				t.Fatalf("CheckTree(%d, %d) = %v", old, size, err)
			}
			if len(p) > 0 {
				p[0][0] ^= 1
				if tlog.CheckTree(p, int64(size), roots[size], int64(old), roots[old]) == nil {
					t.Fatalf("CheckTree(%d, %d) accepted a changed proof hash", old, size)
				}
			}
		}
	}
	if _, _, _, err := l.InclusionProof(ctx, "default", 5, n+1); !errors.Is(err, ErrInvalid) {
		t.Errorf("InclusionProof(beyond size) = %v, want ErrInvalid", err)
	}
	if _, _, _, err := l.InclusionProof(ctx, "default", 5, 5); !errors.Is(err, ErrInvalid) {
		t.Errorf("InclusionProof(index = size) = %v, want ErrInvalid", err)
	}
}

func TestVerifyDirNamesTamperedIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	for i := 0; i < 20; i++ {
		mustAppend(t, l, "default", span(i, "payload"))
	}
	if _, err := l.CreateTenant(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, "other", span(1, "other tenant"))
	if _, err := l.Checkpoint(ctx, "default", true); err != nil {
		t.Fatal(err)
	}
	vkey := l.VerifierKey()
	l.Close()
	keys := testKeys(t, dir)

	res, err := VerifyDir(ctx, dir, keys.Master, vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Problems) != 0 {
			t.Fatalf("VerifyDir(clean) = %v", r.Problems)
		}
	}
	if len(res) != 3 || res[0].Tenant != "default" || res[0].Size != 20 || res[0].Checkpoints != 1 || res[2].Tenant != "other" {
		t.Fatalf("VerifyDir(clean) = %+v", res)
	}

	// Flip one byte of header 7 (its appended_at) behind the ledger's back.
	db, err := openDB(filepath.Join(dir, LogDir), deriveKey(keys.Master, infoBadger), slog.New(slog.DiscardHandler), func(*badger.DB) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(entryKey(1, 7))
		if err != nil {
			return err
		}
		b, _ := item.ValueCopy(nil)
		hb, _, _ := splitEntryRecord(7, b)
		hb[len(hb)-70] ^= 0x01
		return txn.Set(entryKey(1, 7), b)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	res, err = VerifyDir(ctx, dir, keys.Master, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Problems) == 0 || res[0].Problems[0].Index != 7 {
		t.Fatalf("VerifyDir(tampered header 7) problems = %v, want the first at index 7", res[0].Problems)
	}
	if len(res[2].Problems) != 0 {
		t.Errorf("VerifyDir: other tenant reports %v", res[2].Problems)
	}
}

func TestKeyHandling(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	mustAppend(t, l, "default", span(1, "x"))
	l.Close()

	for _, f := range []string{MasterKeyFile, SigningKeyFile} {
		p := filepath.Join(dir, f)
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
		os.Chmod(p, 0o644)
		if _, _, err := LoadOrCreateKeys(KeyPaths{Dir: dir}); !errors.Is(err, ErrKeyPermissions) {
			t.Errorf("LoadOrCreateKeys(%s 0644) = %v, want ErrKeyPermissions", f, err)
		}
		os.Chmod(p, 0o600)
	}

	other := testKeys(t, t.TempDir())
	mine := testKeys(t, dir)
	if _, err := Open(ctx, Options{Dir: dir, Keys: &Keys{Master: other.Master, SigningKey: mine.SigningKey}}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Open(wrong master key) = %v, want ErrKeyMismatch", err)
	}
	if _, err := Open(ctx, Options{Dir: dir, Keys: &Keys{Master: mine.Master, SigningKey: other.SigningKey}}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Open(wrong signing key) = %v, want ErrKeyMismatch", err)
	}
	if _, _, err := LoadOrCreateKeys(KeyPaths{Dir: dir, MasterKey: filepath.Join(dir, "missing.key")}); err == nil {
		t.Error("LoadOrCreateKeys(explicit missing path) = nil, want an error")
	}
}

func TestUnknownFormatRefused(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	l.Close()
	keys := testKeys(t, dir)
	opts := badgerOptions(filepath.Join(dir, LogDir), deriveKey(keys.Master, infoBadger), slog.New(slog.DiscardHandler))
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(txn *badger.Txn) error { return txn.Set(metaFormat, []byte{0, 0, 0, 9}) })
	db.Close()
	if _, err := Open(context.Background(), Options{Dir: dir, Keys: keys}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Open(format 9) = %v, want ErrUnknownFormat", err)
	}
}

func TestConcurrentAppendsAndTenants(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	if _, err := l.CreateTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	const workers, per = 16, 40
	var mu sync.Mutex
	seen := map[string]map[uint64]bool{"default": {}, "acme": {}}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			tenant := []string{"default", "acme"}[w%2]
			for i := 0; i < per; i++ {
				rs, err := l.Append(ctx, tenant, []Record{span(w*per+i, "payload")})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[tenant][rs[0].Index] {
					errs <- fmt.Errorf("index %d handed out twice", rs[0].Index)
				}
				seen[tenant][rs[0].Index] = true
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vkey := l.VerifierKey()
	l.Close()
	res, err := VerifyDir(ctx, dir, testKeys(t, dir).Master, vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Problems) > 0 || r.Size != uint64(len(seen[r.Tenant])) {
			t.Errorf("tenant %s: size %d, %d receipts, problems %v", r.Tenant, r.Size, len(seen[r.Tenant]), r.Problems)
		}
	}
}

func TestCheckpointsStayConsistent(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	empty, err := l.Checkpoint(ctx, "default", true)
	if err != nil || empty.Size != 0 || empty.Root != format.EmptyRoot {
		t.Fatalf("Checkpoint(empty) = %+v, %v", empty, err)
	}
	var prev *Checkpoint
	for round := 0; round < 5; round++ {
		for i := 0; i < 7; i++ {
			mustAppend(t, l, "default", span(round*7+i, "x"))
		}
		cp, err := l.Checkpoint(ctx, "default", true)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := format.OpenCheckpoint(cp.Note, l.verifier)
		if err != nil || opened.Size != cp.Size || opened.Origin != l.Origin("default") {
			t.Fatalf("OpenCheckpoint(signed) = %+v, %v", opened, err)
		}
		if prev != nil {
			p, _, err := l.ConsistencyProof(ctx, "default", prev.Size, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, int64(cp.Size), cp.Root, int64(prev.Size), prev.Root); err != nil {
				t.Errorf("checkpoints %d and %d inconsistent: %v", prev.Size, cp.Size, err)
			}
		}
		prev = cp
	}
	// Tamper with the stored hash of entries 0-31, which the root of the
	// last checkpoint (size 35) is made of: the log must refuse to sign again.
	l.db.Update(func(txn *badger.Txn) error {
		// Entry 31 completed it: the last of the five hashes its record holds.
		item, err := txn.Get(entryKey(1, 31))
		if err != nil {
			return err
		}
		b, _ := item.ValueCopy(nil)
		copy(b[len(b)-32:], make([]byte, 32))
		return txn.Set(entryKey(1, 31), b)
	})
	mustAppend(t, l, "default", span(99, "x"))
	if _, err := l.Checkpoint(ctx, "default", true); !errors.Is(err, ErrInconsistent) {
		t.Errorf("Checkpoint(after tree tampering) = %v, want ErrInconsistent", err)
	}
}

func TestPayloadsEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	marker := "MARKER-" + rand.Text()
	mustAppend(t, l, "default", span(1, marker))
	l.Close()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("user-1")) {
			t.Errorf("%s holds plaintext payload or subject", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTenantsAndAccessEntries(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	if _, err := l.Append(ctx, "nobody", []Record{span(1, "x")}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Append(unknown tenant) = %v, want ErrNotFound", err)
	}
	if created, err := l.CreateTenant(ctx, "acme"); err != nil || !created {
		t.Fatalf("CreateTenant(acme) = %v, %v", created, err)
	}
	if created, err := l.CreateTenant(ctx, "acme"); err != nil || created {
		t.Errorf("CreateTenant(acme) again = %v, %v; want false, nil", created, err)
	}
	if _, err := l.CreateTenant(ctx, SystemTenant); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateTenant(system) = %v, want ErrInvalid", err)
	}
	if got := fmt.Sprint(l.Tenants()); got != "[acme default system]" {
		t.Errorf("Tenants() = %s", got)
	}
	access := func(outcome format.AccessOutcome, what string) Record {
		return Record{Kind: format.KindAccess, SubKind: uint8(outcome), RetentionClass: "access", Payload: []byte(what)}
	}
	mustAppend(t, l, "acme", span(1, "a"), access(format.AccessAllowed, "read 0"))
	mustAppend(t, l, "acme", access(format.AccessDenied, "denied"), access(format.AccessAllowed, "read 0"), span(2, "b"))
	var got []string
	for from, n := uint64(0), 0; n < 10; n++ {
		es, next, err := l.EntriesOfKind(ctx, "acme", format.KindAccess, from, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			got = append(got, fmt.Sprintf("%d:%s:%s", e.Header.Index, format.AccessOutcome(e.Header.SubKind), e.Payload))
		}
		if next == 0 {
			break
		}
		from = next
	}
	if want := "[1:allowed:read 0 2:denied:denied 3:allowed:read 0]"; fmt.Sprint(got) != want {
		t.Errorf("EntriesOfKind(access) = %v, want %s", got, want)
	}
	if _, err := l.Append(ctx, "acme", []Record{{Kind: format.KindAccess, SubKind: 9, Payload: []byte("x")}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Append(access outcome 9) = %v, want ErrInvalid", err)
	}
}

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	k := &APIKey{ID: [8]byte{1, 2, 3}, SecretHash: [32]byte{9}, Role: "auditor", Tenants: []string{"acme"}, Label: "ext audit", CreatedAt: time.Now().UTC()}
	if err := l.PutAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := l.PutAPIKey(ctx, k); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("PutAPIKey(same id) = %v, want ErrAlreadyExists", err)
	}
	revokedAt := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	if _, err := l.RevokeAPIKey(ctx, k.ID, revokedAt); err != nil {
		t.Fatal(err)
	}
	l.RevokeAPIKey(ctx, k.ID, revokedAt.Add(time.Hour))
	l.Close()
	l = openTest(t, dir)
	defer l.Close()
	got, err := l.GetAPIKey(ctx, k.ID)
	if err != nil || !got.RevokedAt.Equal(revokedAt) || got.SecretHash != k.SecretHash || got.Role != "auditor" {
		t.Errorf("GetAPIKey() after restart = %+v, %v", got, err)
	}
	if _, err := l.GetAPIKey(ctx, [8]byte{7}); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetAPIKey(unknown) = %v, want ErrNotFound", err)
	}
	if ks, err := l.ListAPIKeys(ctx); err != nil || len(ks) != 1 {
		t.Errorf("ListAPIKeys() = %v, %v", ks, err)
	}
}

func TestLeafHashes(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	for i := 0; i < 9; i++ {
		mustAppend(t, l, "default", span(i, fmt.Sprint("p", i)))
	}
	idxs := []uint64{8, 0, 3, 3, 7}
	hs, err := l.LeafHashes(ctx, "default", idxs)
	if err != nil || len(hs) != len(idxs) {
		t.Fatalf("LeafHashes(%v) = %d hashes, %v", idxs, len(hs), err)
	}
	for j, i := range idxs {
		e, err := l.GetEntry(ctx, "default", i)
		if err != nil || e.LeafHash != hs[j] {
			t.Errorf("LeafHashes: entry %d = %x, GetEntry says %x (%v)", i, hs[j], e.LeafHash, err)
		}
	}
	if _, err := l.LeafHashes(ctx, "default", []uint64{2, 9}); !errors.Is(err, ErrNotFound) {
		t.Errorf("LeafHashes(beyond the log) = %v, want ErrNotFound", err)
	}
}
