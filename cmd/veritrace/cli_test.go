package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// TestAPIKeyFile: a key file that is missing, unreadable or empty fails
// the command naming the file, before any request is sent (the address is
// one nothing listens on, so a request would fail otherwise); so does
// giving no key at all.
func TestAPIKeyFile(t *testing.T) {
	t.Setenv("VERITRACE_API_KEY", "")
	t.Setenv("VERITRACE_API_KEY_FILE", "")
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.key")
	os.WriteFile(empty, []byte("\n"), 0o600)
	missing := filepath.Join(dir, "missing.key")
	const addr = "http://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"missing file", "", []string{"--api-key-file", missing}, missing},
		{"missing file from the environment", missing, nil, missing},
		{"a directory", "", []string{"--api-key-file", dir}, dir},
		{"empty file", "", []string{"--api-key-file", empty}, empty},
		{"no key", "", nil, "--api-key-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VERITRACE_API_KEY_FILE", tc.env)
			for _, cmd := range clientCommands(t, dir) {
				args := append(append(cmd, "--addr", addr), tc.args...)
				err := run(context.Background(), args, &strings.Builder{})
				if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "connection refused") {
					t.Errorf("veritrace %s = %v, want an error naming %s before any request", strings.Join(args, " "), err, tc.want)
				}
			}
		})
	}
}

// clientCommands is one valid invocation of every command that talks to a
// server (arguments and flags, without --addr and key).
func clientCommands(t *testing.T, dir string) [][]string {
	t.Helper()
	trace := "000102030405060708090a0b0c0d0e0f"
	cmds := [][]string{
		{"append", "../../examples/trace.json"},
		{"version", "register", "--kind", "prompt", "--name", "n", "--label", "l", "../../examples/prompt.txt"},
		{"version", "get", strings.Repeat("ab", 32)}, {"version", "list"},
		{"checkpoint"}, {"prove", "1"}, {"get", "1"}, {"trace", trace}, {"query", "--subject", "s"},
		{"export", "--trace", trace, "-o", filepath.Join(dir, "x.zip")},
		{"erase", "--subject", "s", "--legal-basis", "b", "--reason", "r"}, {"erasure", "id"}, {"erasures"},
		{"verify-receipt", filepath.Join(dir, "receipt.txt"), "--key", filepath.Join(dir, "log.pub")}, // with --addr: checks on the server
		{"hold", "place", "--subject", "s", "--case", "c", "--reason", "r"}, {"hold", "release", "h", "--reason", "r"}, {"hold", "list"},
		{"retention", "show"}, {"retention", "set", "../../examples/prompt.txt"}, {"sweep"},
		{"keys", "create", "--role", "auditor", "--tenants", "default"}, {"keys", "list"}, {"keys", "revoke", "0123456789abcdef"},
		{"tenants", "create", "acme"}, {"tenants", "list"}, {"access-log"}, {"bench", "--requests", "1"},
	}
	covered := map[string]bool{"serve": true, "verify": true, "verify-log": true, "health": true} // no server, or no key
	for _, c := range cmds {
		covered[c[0]] = true
	}
	for _, c := range commands {
		if !covered[c.name] {
			t.Errorf("command %s is not in clientCommands", c.name)
		}
	}
	return cmds
}

// TestRoleSpelling: the roles are spelled out in keys create's help, and
// the compliance officer's role is accepted as written in prose.
func TestRoleSpelling(t *testing.T) {
	for in, want := range map[string]v1.Role{
		"ingester": v1.Role_ROLE_INGESTER, "auditor": v1.Role_ROLE_AUDITOR, "admin": v1.Role_ROLE_ADMIN,
		"compliance_officer": v1.Role_ROLE_COMPLIANCE_OFFICER, "compliance-officer": v1.Role_ROLE_COMPLIANCE_OFFICER,
		"COMPLIANCE_OFFICER": v1.Role_ROLE_COMPLIANCE_OFFICER,
	} {
		if got, err := parseRoleFlag(in); err != nil || got != want {
			t.Errorf("parseRoleFlag(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "root", "unspecified", "role_auditor"} {
		if _, err := parseRoleFlag(in); err == nil || !strings.Contains(err.Error(), "compliance_officer") {
			t.Errorf("parseRoleFlag(%q) = %v, want an error listing the roles", in, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "create", "--help"}, "compliance_officer"},
		{[]string{"keys", "--help"}, "create, list or revoke"},
	} {
		var err error
		help := stderrOf(t, func() { err = run(context.Background(), tc.args, &strings.Builder{}) })
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(help, tc.want) {
			t.Errorf("veritrace %s = %v:\n%s\nwant help naming %s", strings.Join(tc.args, " "), err, help, tc.want)
		}
	}
}

// stderrOf runs f and returns what it wrote to the process's stderr.
func stderrOf(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	f()
	os.Stderr = saved
	w.Close()
	return <-done
}

// refusingRetention answers every Erase with err and keeps the request id
// it was sent.
type refusingRetention struct {
	veritracev1connect.UnimplementedRetentionServiceHandler
	err *connect.Error
	got string
}

func (b *refusingRetention) Erase(_ context.Context, req *connect.Request[v1.EraseRequest]) (*connect.Response[v1.EraseResponse], error) {
	b.got = req.Msg.GetRequestId()
	return nil, b.err
}

func (b *refusingRetention) PlaceHold(_ context.Context, req *connect.Request[v1.PlaceHoldRequest]) (*connect.Response[v1.PlaceHoldResponse], error) {
	b.got = req.Msg.GetRequestId()
	return nil, b.err
}

// TestEraseErrorNamesTheRequestID: `veritrace erase` and `veritrace hold
// place` without --request-id make one up; when the server refuses the erasure with unavailable
// ("ask again with the same request id": beside another plan, which may
// have stored the request first, docs/RETENTION.md "An erasure beside
// another plan"), the id was printed on stderr before the request was
// sent, and the error names it and how to ask again with it;
// a refusal of the request as asked (already_exists: the id names
// another request) names the id and does not tell to ask again (review
// attack20: the CLI showed neither, and asking again made a second
// request).
func TestEraseErrorNamesTheRequestID(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("vtk_0123456789abcdef_"+strings.Repeat("A", 43)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		err   *connect.Error
		again bool
	}{
		{"beside another plan", connect.NewError(connect.CodeUnavailable, errors.New("erasure or sweep dsr-1 has committed to erase 3 of the selected entries and has not destroyed their keys yet; this request has erased nothing yet: ask again with the same request id once it is done (GetErasure dsr-1)")), true},
		{"answer lost", connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded")), true},
		{"id of another request", connect.NewError(connect.CodeAlreadyExists, errors.New("request_id: used for another request; use a new request id")), false},
	} {
		for _, cmd := range []struct {
			what string
			args []string
		}{
			{"erasure request", []string{"erase", "--subject", "s", "--legal-basis", "b", "--reason", "r"}},
			{"hold request", []string{"hold", "place", "--subject", "s", "--case", "c", "--reason", "r"}},
		} {
			t.Run(cmd.args[0]+"/"+tc.name, func(t *testing.T) {
				h := &refusingRetention{err: tc.err}
				_, handler := veritracev1connect.NewRetentionServiceHandler(h)
				srv := httptest.NewServer(handler)
				defer srv.Close()
				var err error
				shown := stderrOf(t, func() {
					err = run(context.Background(), append(cmd.args, "--addr", srv.URL, "--api-key-file", keyFile), &strings.Builder{})
				})
				if err == nil || h.got == "" {
					t.Fatalf("%s against a refusing server = %v (server saw request id %q)", cmd.args[0], err, h.got)
				}
				if want := cmd.what + " " + h.got + "\n"; shown != want {
					t.Errorf("%s printed %q on stderr, want %q (the made-up id, before sending)", cmd.args[0], shown, want)
				}
				if connect.CodeOf(err) != tc.err.Code() {
					t.Errorf("%s error code = %v, want %v (wrapped)", cmd.args[0], connect.CodeOf(err), tc.err.Code())
				}
				if !strings.Contains(err.Error(), cmd.what+" "+h.got) {
					t.Errorf("%s refused %v: the CLI showed %q, not the request id %s it made up", cmd.args[0], tc.err.Code(), err, h.got)
				}
				if again := strings.Contains(err.Error(), "--request-id "+h.got); again != tc.again {
					t.Errorf("%s refused %v: error %q tells to ask again with --request-id: %v, want %v", cmd.args[0], tc.err.Code(), err, again, tc.again)
				}
			})
		}
	}
}
