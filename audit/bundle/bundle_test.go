package bundle

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func golden(t testing.TB) ([]byte, note.Verifier) {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.zip")
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile("testdata/golden.pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(k)))
	if err != nil {
		t.Fatal(err)
	}
	return b, v
}

// TestGoldenBundleVerifies pins the format: a bundle written by an earlier
// build (regenerate with `go test ./audit -run Golden -update`) must keep
// verifying.
func TestGoldenBundleVerifies(t *testing.T) {
	b, v := golden(t)
	rep := Verify(bytes.NewReader(b), int64(len(b)), v, nil)
	var out strings.Builder
	rep.Write(&out)
	if !rep.OK() {
		t.Fatalf("golden bundle does not verify:\n%s", out.String())
	}
	if rep.Entries != 4 || rep.Traces != 1 {
		t.Errorf("golden bundle: %d entries, %d traces; want 4, 1", rep.Entries, rep.Traces)
	}
}

func TestVerifyFile(t *testing.T) {
	var out strings.Builder
	rep, err := VerifyFile("testdata/golden.zip", "testdata/golden.pub", "", &out)
	if err != nil || !rep.OK() || !strings.Contains(out.String(), "VERIFIED: every check passed") {
		t.Errorf("VerifyFile(golden) = %v\n%s", err, out.String())
	}
	if _, err := VerifyFile("testdata/missing.zip", "testdata/golden.pub", "", &out); err == nil {
		t.Error("VerifyFile(missing bundle) = nil error")
	}
	out.Reset()
	rep, err = VerifyFile("testdata/golden.pub", "testdata/golden.pub", "", &out)
	if err != nil || rep.OK() || !strings.Contains(out.String(), "not a zip file") {
		t.Errorf("VerifyFile(not a zip) = %v, %v\n%s", rep, err, out.String())
	}
}

// TestNoStorageOrServerDependency keeps the auditor's verifier small: the
// bundle package and the veritrace-verify command must not link Badger or
// any server code.
func TestNoStorageOrServerDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../../cmd/veritrace-verify").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "dgraph-io/badger") || strings.Contains(dep, "veritrace/cmd/veritrace/") ||
			dep == "github.com/veritrace/veritrace/ledger" || strings.HasPrefix(dep, "connectrpc.com") {
			t.Errorf("the verifier depends on %s", dep)
		}
	}
}

// FuzzVerify feeds damaged bundles to the verifier: whatever the bytes, it
// must answer with a report, never panic or hang.
func FuzzVerify(f *testing.F) {
	b, v := golden(f)
	f.Add(b)
	f.Add([]byte("PK\x03\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		Verify(bytes.NewReader(data), int64(len(data)), v, nil)
	})
}
