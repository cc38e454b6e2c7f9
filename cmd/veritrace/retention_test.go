package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRetentionShowEditSet: the routine of docs/RETENTION.md, show, edit,
// set, through the CLI against a real server. The shown policy carries its
// revision; a copy shown before a colleague's change is refused, naming
// both revisions; setting it unchanged records nothing and says so.
func TestRetentionShowEditSet(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startServe(t, serveConfig{DataDir: dir})
	defer stop()
	url := "http://" + addr
	key := benchKey(t, url, dir, "compliance_officer", "default")
	cli := func(args ...string) (string, error) {
		var out strings.Builder
		err := run(context.Background(), append(args, "--addr", url, "--api-key-file", key), &out)
		return out.String(), err
	}
	write := func(name, text string) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	show := func() string {
		t.Helper()
		out, err := cli("retention", "show")
		if err != nil {
			t.Fatalf("retention show = %v", err)
		}
		return out
	}
	// protojson varies its white space: match with \s*.
	days := regexp.MustCompile(`("days":\s*)(\d+)`)
	edit := func(policy string, to string) string {
		t.Helper()
		loc := days.FindStringSubmatchIndex(policy) // the default rule's, printed first
		if loc == nil {
			t.Fatalf("retention show printed no days:\n%s", policy)
		}
		return policy[:loc[4]] + to + policy[loc[5]:]
	}
	has := func(policy, member, value string) bool {
		return regexp.MustCompile(`"` + member + `":\s*` + value + `\b`).MatchString(policy)
	}

	first := edit(show(), "400")
	if out, err := cli("retention", "set", write("p1.json", first), "--reason", "keep longer"); err != nil || !strings.Contains(out, "revision 1 recorded") {
		t.Fatalf("retention set (from the default) = %q, %v", out, err)
	}
	mine, theirs := show(), show()
	if !has(mine, "revision", "1") {
		t.Fatalf("retention show does not print the revision:\n%s", mine)
	}
	if out, err := cli("retention", "set", write("theirs.json", edit(theirs, "500")), "--reason", "a colleague"); err != nil || !strings.Contains(out, "revision 2 recorded") {
		t.Fatalf("retention set (the colleague's) = %q, %v", out, err)
	}
	out, err := cli("retention", "set", write("mine.json", edit(mine, "450")), "--reason", "mine")
	if err == nil || !strings.Contains(err.Error(), "aborted") || !strings.Contains(err.Error(), "the policy is at revision 2; you edited revision 1: show it again") {
		t.Fatalf("retention set (from revision 1, at 2) = %q, %v; want refused, naming both revisions", out, err)
	}
	if now := show(); !has(now, "revision", "2") || !has(now, "days", "500") {
		t.Fatalf("after the refused change retention show prints:\n%s", now)
	}
	out, err = cli("retention", "set", write("same.json", show()), "--reason", "no change")
	if err != nil || !strings.Contains(out, "unchanged") || !strings.Contains(out, "revision 2") || strings.Contains(out, "recorded at") {
		t.Fatalf("retention set (unchanged) = %q, %v; want it to say nothing was recorded", out, err)
	}
}
