package bundle

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestDeferredDecodedSyntax: the verifier leaves the syntax of an entry
// file's decoded value to its comparison with the payload's decoded form
// (parseEntryDeferred); every entry file whose decoded value parseEntry
// refuses must still be refused as parseEntry refuses it, with nothing
// else of that entry counted, and a decoded value that is valid JSON must
// fail or pass the decoded-content check alone, as before.
func TestDeferredDecodedSyntax(t *testing.T) {
	l, sel, idxs := storedLog(t)
	honest := l.bundle(sel, []byte{1}, idxs...)
	name := EntryFile(idxs[1])
	file := member(t, honest, name)
	at, end := bytes.Index(file, []byte(`"decoded":`)), bytes.LastIndexByte(file, '}')
	if at < 0 || end < at {
		t.Fatalf("%s: no decoded value last: %s", name, file)
	}
	at += len(`"decoded":`)
	decoded := file[at:end]
	deep := strings.Repeat("[", maxValueNesting+1) + "0" + strings.Repeat("]", maxValueNesting+1)
	for _, c := range []struct {
		name      string
		decoded   string
		syntax    bool // parseEntry refuses the file
		decodedOK bool // the decoded content check passes
	}{
		{"truncated", string(decoded[:len(decoded)-1]), true, false},
		{"two values", string(decoded) + " 1", true, false},
		{"a member twice", `{"a":1,"a":1}`, true, false},
		{"a member twice, nested", `{"x":{"a":1,"a":1}}`, true, false},
		{"trailing comma", `{"a":1,}`, true, false},
		{"bad literal", `tru`, true, false},
		{"nested too deep", deep, true, false},
		{"a control character in a string", "\"a\x01b\"", true, false},
		{"a second decoded member", string(decoded) + `,"decoded":1`, true, false},
		{"valid, another value", `{"a":1}`, false, false},
		{"valid, spaced", " " + strings.ReplaceAll(string(decoded), ",", " , ") + "\n", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := append(append(append([]byte{}, file[:at]...), c.decoded...), file[end:]...)
			_, perr := ParseEntry(f)
			if (perr != nil) != c.syntax {
				t.Fatalf("ParseEntry = %v, want an error: %v", perr, c.syntax)
			}
			rep, out := l.verify(replaceMember(t, honest, name, f, 0))
			if rep.OK() {
				t.Fatalf("verify passed:\n%s", out)
			}
			failed := strings.Join(rep.Failed(), ",")
			headers := fmt.Sprintf("entry %d: %s is not an entry file: %v", idxs[1], name, perr)
			for _, ch := range rep.Checks {
				switch {
				case c.syntax && ch.Name == CheckHeaders:
					if !strings.Contains(out, headers) {
						t.Errorf("want the headers check to say %q, got:\n%s", headers, out)
					}
				case c.syntax && ch.Name != CheckFiles && ch.Name != CheckSignature && ch.Name != CheckManifest && ch.Name != CheckCheckpoint && ch.Passed > len(idxs)-1:
					t.Errorf("check %s passed %d times; the refused entry must count for none", ch.Name, ch.Passed)
				}
			}
			want := CheckFiles + "," + CheckHeaders
			switch {
			case c.decodedOK:
				want = CheckFiles
			case !c.syntax:
				want = CheckFiles + "," + CheckDecoded
			}
			if failed != want {
				t.Errorf("failed checks %q, want %q:\n%s", failed, want, out)
			}
		})
	}
}
