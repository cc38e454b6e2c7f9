package retention

import (
	"context"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A sweep killed after the DropPrefix of its buckets and before their
// index cleanup (the order of an earlier build) is finished by Resume: no
// location or scope record of the bucket's keys is left. The plan names the
// bucket by day and class only; Resume finds the keys by the bucket's scope
// records.
func TestSweepKilledAfterDropPrefixLeavesNoKeyRecords(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.appendSubject(t, "dave", 2, 1)
	last := e.appendSubject(t, "erin", 1, 2)
	keys, err := e.l.Keys(ctx, "default")
	if err != nil || len(keys) != 2 {
		t.Fatalf("Keys() = %v, %v", keys, err)
	}
	b := keys[0].Bucket()
	e.clock.Add(200 * Day)
	var all []uint64
	for i := uint64(0); i <= last; i++ {
		all = append(all, i)
	}
	er := &Erasure{ID: "sweep-killed", Kind: "expiry", Tenant: "default", State: "executing", Selector: "expiry",
		Reason: "retention period ended", RequestedAt: e.clock.Now(), Erase: all, Buckets: []string{bucketName(b)}}
	if err := e.s.putErasure(ctx, er); err != nil {
		t.Fatal(err)
	}
	e.l.Close()
	db := rawKeyDB(t, e.dir, e.keys.Master)
	if err := db.DropPrefix(materialKey(keys[0])[:len(materialKey(keys[0]))-32]); err != nil {
		t.Fatal(err)
	}
	db.Close()

	e.open(t) // the restart: serve runs Resume
	if err := e.s.Resume(ctx); err != nil {
		t.Fatalf("Resume() = %v", err)
	}
	if st, err := e.s.ErasureStatus(ctx, "default", er.ID); err != nil || st.State != "done" {
		t.Fatalf("ErasureStatus = %+v, %v", st, err)
	}
	e.l.Close()
	db = rawKeyDB(t, e.dir, e.keys.Master)
	defer db.Close()
	db.View(func(txn *badger.Txn) error {
		for _, k := range keys {
			if _, err := txn.Get(locationKey(k)); err == nil {
				t.Errorf("key %x of the swept bucket: its location record is still in the key store", k.ID)
			}
			scope := materialKey(k)
			scope[0] = 0x24
			if _, err := txn.Get(scope[:len(scope)-16]); err == nil {
				t.Errorf("key %x of the swept bucket: its scope record is still in the key store", k.ID)
			}
		}
		return nil
	})
}

// A finished erasure keeps no reference to its keys' scopes: they hold the
// erased subject's pseudonym, needed only while the plan executes.
func TestFinishedErasureKeepsNoKeyScopes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.appendSubject(t, "dave", 2, 1)
	if _, err := e.s.Erase(ctx, "default", ErasureRequest{ID: "req-1", Subject: "dave", LegalBasis: "GDPR Art. 17(1)(a)", Reason: "subject request"}); err != nil {
		t.Fatal(err)
	}
	b, err := e.l.GetState(ctx, "default", stateErasure+"req-1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "key_refs") {
		t.Errorf("finished erasure plan = %s; want no key_refs", b)
	}
	names, err := e.l.StateNames(ctx, "default", statePlanPart)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, listKeyRefs) || strings.Contains(n, listPseudonyms) {
			t.Errorf("finished erasure plan: state record %q is still stored", n)
		}
	}
}
