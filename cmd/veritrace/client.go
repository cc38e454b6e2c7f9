package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger/format"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	addr    string
	tenant  string
	grpc    bool
	keyFile string
	token   string // the API key, loaded from keyFile or $VERITRACE_API_KEY
}

// register adds the client flags to fs. parseFlags then loads the API key,
// so that a command fails on a bad key file before it sends anything.
func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", envOr("VERITRACE_ADDR", "http://127.0.0.1:7070"), "server URL ($VERITRACE_ADDR)")
	fs.StringVar(&c.tenant, "tenant", os.Getenv("VERITRACE_TENANT"), "tenant ($VERITRACE_TENANT; default: the key's only tenant, else \"default\")")
	fs.BoolVar(&c.grpc, "grpc", false, "use the gRPC protocol instead of Connect")
	c.keyFile = os.Getenv("VERITRACE_API_KEY_FILE")
	fs.Var(keyFileFlag{c}, "api-key-file", "file holding the API key ($VERITRACE_API_KEY_FILE; or the key itself in $VERITRACE_API_KEY)")
}

// keyFileFlag is the --api-key-file flag; parseFlags finds the client
// flags through it to load the key.
type keyFileFlag struct{ c *clientFlags }

func (f keyFileFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.keyFile
}
func (f keyFileFlag) Set(v string) error { f.c.keyFile = v; return nil }

// loadKey reads the API key from the key file, else from
// $VERITRACE_API_KEY. Keys are never taken from the command line, where
// other users could see them. A key file that cannot be read or is empty,
// or no key at all, is an error naming what to fix.
func (c *clientFlags) loadKey() error {
	if c.keyFile != "" {
		b, err := os.ReadFile(c.keyFile)
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err
		}
		if err != nil {
			return fmt.Errorf("API key file %s (--api-key-file or $VERITRACE_API_KEY_FILE): %w", c.keyFile, err)
		}
		if c.token = strings.TrimSpace(string(b)); c.token == "" {
			return fmt.Errorf("API key file %s (--api-key-file or $VERITRACE_API_KEY_FILE) is empty", c.keyFile)
		}
		if !rpc.ValidToken(c.token) {
			// Its contents are not shown: they may be some other secret.
			return fmt.Errorf("API key file %s (--api-key-file or $VERITRACE_API_KEY_FILE) does not hold an API key (one line, vtk_<id>_<secret>, as keys create --token-file writes it)", c.keyFile)
		}
		return nil
	}
	if c.token = strings.TrimSpace(os.Getenv("VERITRACE_API_KEY")); c.token == "" {
		return errors.New("no API key: give --api-key-file FILE, or set $VERITRACE_API_KEY_FILE (or $VERITRACE_API_KEY)")
	}
	if !rpc.ValidToken(c.token) {
		return errors.New("$VERITRACE_API_KEY does not hold an API key (vtk_<id>_<secret>)")
	}
	return nil
}

func (c *clientFlags) options() []connect.ClientOption {
	opts := []connect.ClientOption{connect.WithInterceptors(rpc.ClientHeaders(c.tenant, c.token))}
	if c.grpc {
		opts = append(opts, connect.WithGRPC())
	}
	return opts
}

func (c *clientFlags) httpClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(!c.grpc)
	t.Protocols.SetHTTP2(true)
	t.Protocols.SetUnencryptedHTTP2(c.grpc)
	t.MaxIdleConnsPerHost = 256
	return &http.Client{Transport: t}
}

func (c *clientFlags) ingest() veritracev1connect.IngestServiceClient {
	return veritracev1connect.NewIngestServiceClient(c.httpClient(), c.addr, c.options()...)
}

func (c *clientFlags) ledger() veritracev1connect.LedgerServiceClient {
	return veritracev1connect.NewLedgerServiceClient(c.httpClient(), c.addr, c.options()...)
}

func (c *clientFlags) audit() veritracev1connect.AuditServiceClient {
	return veritracev1connect.NewAuditServiceClient(c.httpClient(), c.addr, c.options()...)
}

func (c *clientFlags) retention() veritracev1connect.RetentionServiceClient {
	return veritracev1connect.NewRetentionServiceClient(c.httpClient(), c.addr, c.options()...)
}

func (c *clientFlags) admin() veritracev1connect.AdminServiceClient {
	return veritracev1connect.NewAdminServiceClient(c.httpClient(), c.addr, c.options()...)
}

// jsonOut prints every field, zeros included ("index": "0" of the first
// entry, "duplicate": false), so that a script reading a field finds it
// in every answer; unset messages and optional fields stay absent.
var jsonOut = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitDefaultValues: true}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func parseFlags(fs *flag.FlagSet, args []string, nargs int, argNames string) ([]string, error) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), strings.TrimSpace("usage: veritrace "+fs.Name()+" [flags] "+argNames))
		fs.PrintDefaults()
	}
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if len(rest) != nargs {
		fs.Usage()
		return nil, fmt.Errorf("%s: want %d argument(s) %s, got %d", fs.Name(), nargs, argNames, len(rest))
	}
	// A command that talks to a server loads its API key now.
	if f := fs.Lookup("api-key-file"); f != nil {
		if kf, ok := f.Value.(keyFileFlag); ok {
			if err := kf.c.loadKey(); err != nil {
				return nil, err
			}
		}
	}
	return rest, nil
}

// parseInterleaved parses flags that may come before or after the
// arguments ("hold release ID --reason R") and returns the arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// subcommand checks that args name a subcommand of cmd and returns the
// client flags and flag set for it.
func subcommand(cmd, subs string, args []string) (*clientFlags, *flag.FlagSet, error) {
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("%s: want a subcommand: %s", cmd, subs)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(os.Stderr, "usage: veritrace %s SUBCOMMAND [flags]\nsubcommands: %s\nRun \"veritrace %s SUBCOMMAND -h\" for a subcommand's flags.\n", cmd, subs, cmd)
		return nil, nil, flag.ErrHelp
	}
	cf := &clientFlags{}
	fs := flag.NewFlagSet(cmd+" "+args[0], flag.ContinueOnError)
	cf.register(fs)
	return cf, fs, nil
}

// enumWord turns a proto enum value into the word the CLI shows:
// ROLE_AUDITOR -> auditor.
func enumWord(e fmt.Stringer, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(e.String(), prefix))
}

// parseIndexArg parses the flags and the one INDEX argument of a command.
func parseIndexArg(fs *flag.FlagSet, args []string) (uint64, error) {
	rest, err := parseFlags(fs, args, 1, "INDEX")
	if err != nil {
		return 0, err
	}
	index, err := strconv.ParseUint(rest[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("INDEX %q: not an entry index", rest[0])
	}
	return index, nil
}

func runAppend(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("append", flag.ContinueOnError)
	cf.register(fs)
	wait := fs.Bool("wait-checkpoint", false, "wait for a signed checkpoint and inclusion proofs")
	rest, err := parseFlags(fs, args, 1, "FILE (an AppendSpansRequest in proto JSON, or - for stdin)")
	if err != nil {
		return err
	}
	b, err := readInput(rest[0])
	if err != nil {
		return err
	}
	req := &v1.AppendSpansRequest{}
	if err := protojson.Unmarshal(b, req); err != nil {
		return fmt.Errorf("%s: %w", rest[0], err)
	}
	req.WaitCheckpoint = req.WaitCheckpoint || *wait
	resp, err := cf.ingest().AppendSpans(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	return printJSON(stdout, resp.Msg)
}

func runVersion(ctx context.Context, args []string, stdout io.Writer) error {
	cf, fs, err := subcommand("version", "register, get or list", args)
	if err != nil {
		return err
	}
	switch args[0] {
	case "register":
		kind := fs.String("kind", "", "prompt, policy or pipeline (required)")
		name := fs.String("name", "", "version name, e.g. support-answer (required)")
		label := fs.String("label", "", "version label, e.g. v7 (required)")
		media := fs.String("media-type", "text/plain", "media type of the content")
		rest, err := parseFlags(fs, args[1:], 1, "FILE (the template, policy or pipeline config; - for stdin)")
		if err != nil {
			return err
		}
		k, ok := v1.VersionKind_value["VERSION_KIND_"+strings.ToUpper(*kind)]
		if !ok || k == 0 {
			return fmt.Errorf("--kind must be prompt, policy or pipeline, got %q", *kind)
		}
		content, err := readInput(rest[0])
		if err != nil {
			return err
		}
		resp, err := cf.ingest().RegisterVersion(ctx, connect.NewRequest(&v1.RegisterVersionRequest{
			Kind: v1.VersionKind(k), Name: *name, Label: *label, Content: content, MediaType: *media,
		}))
		if err != nil {
			return err
		}
		return printJSON(stdout, resp.Msg)
	case "get":
		rest, err := parseFlags(fs, args[1:], 1, "ID")
		if err != nil {
			return err
		}
		resp, err := cf.ingest().GetVersion(ctx, connect.NewRequest(&v1.GetVersionRequest{Id: rest[0]}))
		if err != nil {
			return err
		}
		return printJSON(stdout, resp.Msg)
	case "list":
		if _, err := parseFlags(fs, args[1:], 0, ""); err != nil {
			return err
		}
		token := ""
		for {
			resp, err := cf.ingest().ListVersions(ctx, connect.NewRequest(&v1.ListVersionsRequest{PageSize: 1000, PageToken: token}))
			if err != nil {
				return err
			}
			for _, v := range resp.Msg.GetVersions() {
				fmt.Fprintf(stdout, "%s\t%-8s\t%s\t%s\tindex %d\n", v.GetId(), enumWord(v.GetKind(), "VERSION_KIND_"), bundle.Printable(v.GetName()), bundle.Printable(v.GetLabel()), v.GetIndex())
			}
			if token = resp.Msg.GetNextPageToken(); token == "" {
				return nil
			}
		}
	}
	return fmt.Errorf("version: unknown subcommand %q (register, get, list)", args[0])
}

func runCheckpoint(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	cf.register(fs)
	fresh := fs.Bool("fresh", false, "sign a checkpoint of the current tree now")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	resp, err := cf.ledger().GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: *fresh}))
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, resp.Msg.GetCheckpoint().GetNote())
	return err
}

func runGet(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	cf.register(fs)
	index, err := parseIndexArg(fs, args)
	if err != nil {
		return err
	}
	resp, err := cf.ledger().GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: index}))
	if err != nil {
		return err
	}
	return printJSON(stdout, resp.Msg)
}

func runProve(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("prove", flag.ContinueOnError)
	cf.register(fs)
	size := fs.Uint64("size", 0, "tree size to prove against (default: the latest checkpoint)")
	keyFile := fs.String("key", "", "the log's verifier key file (log.pub), obtained out of band; without it the server's own key is used and the check proves nothing against a lying server")
	index, err := parseIndexArg(fs, args)
	if err != nil {
		return err
	}
	lc := cf.ledger()
	cpResp, err := lc.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{}))
	if err != nil {
		return err
	}
	vkey := cpResp.Msg.GetVerifierKey()
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		vkey = strings.TrimSpace(string(b))
	} else {
		fmt.Fprintln(os.Stderr, "warning: no --key given; trusting the verifier key the server reports")
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil && *keyFile != "" {
		return fmt.Errorf("verifier key file %s (--key): not a verifier key (%w)", *keyFile, err)
	}
	if err != nil {
		return fmt.Errorf("the server's verifier key: %w", err)
	}
	resp, err := lc.GetInclusionProof(ctx, connect.NewRequest(&v1.GetInclusionProofRequest{Index: index, TreeSize: *size}))
	if err != nil {
		return err
	}
	if err := printJSON(stdout, resp.Msg); err != nil {
		return err
	}
	p := resp.Msg.GetProof()
	if resp.Msg.GetCheckpoint() == nil {
		return fmt.Errorf("no checkpoint was signed at tree size %d; prove against the latest checkpoint instead", p.GetTreeSize())
	}
	cp, err := format.OpenCheckpoint([]byte(resp.Msg.GetCheckpoint().GetNote()), verifier)
	if err != nil {
		return err
	}
	if cp.Size != p.GetTreeSize() || len(p.GetLeafHash()) != tlog.HashSize {
		return fmt.Errorf("proof is for tree size %d, checkpoint for %d", p.GetTreeSize(), cp.Size)
	}
	proof := make(tlog.RecordProof, len(p.GetHashes()))
	for i, h := range p.GetHashes() {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("proof hash %d has %d bytes", i, len(h))
		}
		copy(proof[i][:], h)
	}
	var leaf tlog.Hash
	copy(leaf[:], p.GetLeafHash())
	if err := tlog.CheckRecord(proof, int64(cp.Size), cp.Root, int64(index), leaf); err != nil {
		return fmt.Errorf("inclusion proof does NOT verify: %w", err)
	}
	fmt.Fprintf(stdout, "OK: entry %d (leaf %x) is in %s at tree size %d, checkpoint signed by %s\n", index, leaf[:], cp.Origin, cp.Size, verifier.Name())
	return nil
}
