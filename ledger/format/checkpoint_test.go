package format

import (
	"crypto/rand"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestCheckpointSignOpen(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	root := tlog.RecordHash([]byte("x"))
	msg, err := note.Sign(&note.Note{Text: CheckpointBody("example.test/default", 7, root)}, s)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(msg, v)
	if err != nil {
		t.Fatalf("OpenCheckpoint() = %v", err)
	}
	if cp.Origin != "example.test/default" || cp.Size != 7 || cp.Root != root {
		t.Errorf("OpenCheckpoint() = %+v", cp)
	}
	bad := append([]byte{}, msg...)
	bad[len("example.test/default\n")] = '8'
	if _, err := OpenCheckpoint(bad, v); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("OpenCheckpoint(altered size) = %v, want ErrCheckpoint", err)
	}
}

func TestParseCheckpointBodyRejects(t *testing.T) {
	for _, text := range []string{
		"", "o\n1\n", "o\n01\nAAAA\n", "o\n1\nAAAA\n", "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		"o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n", "o\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
	} {
		if _, err := ParseCheckpointBody(text); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("ParseCheckpointBody(%q) = %v, want ErrCheckpoint", text, err)
		}
	}
	if _, err := ParseCheckpointBody("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"); err != nil {
		t.Errorf("ParseCheckpointBody(valid) = %v", err)
	}
}

func FuzzParseCheckpointBody(f *testing.F) {
	f.Add(CheckpointBody("a/b", 3, EmptyRoot))
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := ParseCheckpointBody(text)
		if err != nil {
			return
		}
		if got := CheckpointBody(cp.Origin, cp.Size, cp.Root); got != text {
			t.Fatalf("CheckpointBody(ParseCheckpointBody(%q)) = %q", text, got)
		}
	})
}
