package bundle

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// golden reads a golden bundle ("golden", "golden-v2" or "golden-v1") and
// its key.
func golden(t testing.TB, name string) ([]byte, note.Verifier) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".zip")
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile("testdata/" + name + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(k)))
	if err != nil {
		t.Fatal(err)
	}
	return b, v
}

// TestGoldenBundleVerifies pins the format: bundles written by earlier
// builds (regenerate golden.zip with `go test ./audit -run Golden -update`)
// must keep verifying. golden-v2.zip and golden-v1.zip are bundles of
// formats 2 and 1.
func TestGoldenBundleVerifies(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pinned, pinnedV2 := read("golden-pinned.txt"), read("golden-v2-pinned.txt")
	for _, tt := range []struct {
		name            string
		pinned          []byte
		entries, traces int
		want            []string
	}{
		{"golden", nil, 10, 4, []string{"ok    erasures (1)", "ok    consistency proof (1)", "ok    selector (4)", "ok    time range (8)",
			"note: entry 9 has no decoded form: attributes[\"legacy.value\"]: google.protobuf.Value has no kind"}},
		{"golden", pinned, 10, 4, []string{"ok    pinned checkpoint (1)", "ok    consistency proof (2)"}},
		{"golden-v2", nil, 10, 4, []string{"ok    erasures (1)", "ok    consistency proof (1)", "ok    selector (4)",
			"note: a veritrace-bundle/v2 bundle does not show that its time range is complete"}},
		{"golden-v2", pinnedV2, 10, 4, []string{"ok    pinned checkpoint (1)", "ok    consistency proof (2)"}},
		{"golden-v1", nil, 4, 1, []string{"ok    header matches payload (4)", "ok    selector (1)", "note: the selector is not a time range"}},
	} {
		b, v := golden(t, tt.name)
		rep := Verify(bytes.NewReader(b), int64(len(b)), v, tt.pinned)
		var out strings.Builder
		rep.Write(&out)
		if !rep.OK() {
			t.Fatalf("%s does not verify:\n%s", tt.name, out.String())
		}
		if rep.Entries != tt.entries || rep.Traces != tt.traces {
			t.Errorf("%s: %d entries, %d traces; want %d, %d", tt.name, rep.Entries, rep.Traces, tt.entries, tt.traces)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s: the report does not say %q:\n%s", tt.name, w, out.String())
			}
		}
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
