package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// stringList is a repeatable, comma-separable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s = append(*s, part)
		}
	}
	return nil
}

func shortRole(r v1.Role) string { return enumWord(r, "ROLE_") }

// parseRoleFlag reads a role as written on the command line:
// compliance_officer, also compliance-officer, in any case.
func parseRoleFlag(s string) (v1.Role, error) {
	r, ok := v1.Role_value["ROLE_"+strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))]
	if !ok || r == 0 {
		return 0, fmt.Errorf("--role must be ingester, auditor, compliance_officer or admin, got %q", s)
	}
	return v1.Role(r), nil
}

func runKeys(ctx context.Context, args []string, stdout io.Writer) error {
	cf, fs, err := subcommand("keys", "create, list or revoke", args)
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		role := fs.String("role", "", "the key's role (required): ingester (apps), auditor, compliance_officer (or compliance-officer) or admin")
		var tenants stringList
		fs.Var(&tenants, "tenants", "tenants the key is bound to, comma-separated or repeated; \"*\" for all (required; an admin bound to tenants may give only its own)")
		label := fs.String("label", "", "what the key is for")
		expires := fs.Duration("expires-in", 0, "validity, e.g. 720h (default: never expires)")
		tokenFile := fs.String("token-file", "", "write the token to this new file (mode 0600) instead of printing it")
		if _, err := parseFlags(fs, args[1:], 0, ""); err != nil {
			return err
		}
		r, err := parseRoleFlag(*role)
		if err != nil {
			return err
		}
		req := &v1.CreateKeyRequest{Role: r, Tenants: tenants, Label: *label}
		if *expires > 0 {
			req.ExpiresAt = timestamppb.New(time.Now().Add(*expires))
		}
		// The token file is created before the key, so that a key is never
		// made whose token cannot be stored.
		var out *os.File
		if *tokenFile != "" {
			if out, err = os.OpenFile(*tokenFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
				return fmt.Errorf("--token-file: %w", err)
			}
			defer out.Close()
		}
		resp, err := cf.admin().CreateKey(ctx, connect.NewRequest(req))
		if err != nil {
			if out != nil {
				out.Close()
				os.Remove(*tokenFile)
			}
			return err
		}
		k := resp.Msg.GetKey()
		fmt.Fprintf(stdout, "created %s key %s for %s\n", shortRole(k.GetRole()), k.GetId(), strings.Join(k.GetTenants(), ","))
		if out == nil {
			fmt.Fprintf(stdout, "token (shown once; store it now):\n%s\n", resp.Msg.GetToken())
			return nil
		}
		if _, err := fmt.Fprintln(out, resp.Msg.GetToken()); err != nil {
			return fmt.Errorf("--token-file %s: %w (the key %s exists: revoke it)", *tokenFile, err, k.GetId())
		}
		if err := errors.Join(out.Sync(), out.Close()); err != nil {
			return fmt.Errorf("--token-file %s: %w (the key %s exists: revoke it)", *tokenFile, err, k.GetId())
		}
		fmt.Fprintf(stdout, "token written to %s (mode 0600)\n", *tokenFile)
		return nil
	case "list":
		if _, err := parseFlags(fs, args[1:], 0, ""); err != nil {
			return err
		}
		resp, err := cf.admin().ListKeys(ctx, connect.NewRequest(&v1.ListKeysRequest{}))
		if err != nil {
			return err
		}
		for _, k := range resp.Msg.GetKeys() {
			state := "active"
			switch {
			case k.GetRevokedAt() != nil:
				state = "revoked " + k.GetRevokedAt().AsTime().Format(time.RFC3339)
			case k.GetExpiresAt() != nil && !k.GetExpiresAt().AsTime().After(time.Now()):
				state = "expired " + k.GetExpiresAt().AsTime().Format(time.RFC3339)
			case k.GetExpiresAt() != nil:
				state = "expires " + k.GetExpiresAt().AsTime().Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\t%-18s\t%s\t%s\t%q\n", k.GetId(), shortRole(k.GetRole()), strings.Join(k.GetTenants(), ","), state, k.GetLabel())
		}
		return nil
	case "revoke":
		rest, err := parseFlags(fs, args[1:], 1, "KEY_ID")
		if err != nil {
			return err
		}
		resp, err := cf.admin().RevokeKey(ctx, connect.NewRequest(&v1.RevokeKeyRequest{Id: rest[0]}))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked key %s at %s\n", resp.Msg.GetKey().GetId(), resp.Msg.GetKey().GetRevokedAt().AsTime().Format(time.RFC3339))
		return nil
	}
	return fmt.Errorf("keys: unknown subcommand %q (create, list, revoke)", args[0])
}

func runTenants(ctx context.Context, args []string, stdout io.Writer) error {
	cf, fs, err := subcommand("tenants", "create or list", args)
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		rest, err := parseFlags(fs, args[1:], 1, "NAME")
		if err != nil {
			return err
		}
		resp, err := cf.admin().CreateTenant(ctx, connect.NewRequest(&v1.CreateTenantRequest{Name: rest[0]}))
		if err != nil {
			return err
		}
		if resp.Msg.GetCreated() {
			fmt.Fprintf(stdout, "created tenant %s\n", rest[0])
		} else {
			fmt.Fprintf(stdout, "tenant %s exists\n", rest[0])
		}
		return nil
	case "list":
		if _, err := parseFlags(fs, args[1:], 0, ""); err != nil {
			return err
		}
		resp, err := cf.admin().ListTenants(ctx, connect.NewRequest(&v1.ListTenantsRequest{}))
		if err != nil {
			return err
		}
		for _, t := range resp.Msg.GetTenants() {
			fmt.Fprintln(stdout, t)
		}
		return nil
	}
	return fmt.Errorf("tenants: unknown subcommand %q (create, list)", args[0])
}

func runAccessLog(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("access-log", flag.ContinueOnError)
	cf.register(fs)
	from := fs.Uint64("from", 0, "first ledger index")
	subject := fs.String("subject", "", "only records that concern this data subject (named by its pseudonym)")
	session := fs.String("session", "", "only records that concern this session (named by its pseudonym)")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	lc := cf.ledger()
	for next := *from; ; {
		resp, err := lc.ListAccessLog(ctx, connect.NewRequest(&v1.ListAccessLogRequest{FromIndex: next, PageSize: 1000, SubjectId: *subject, SessionId: *session}))
		if err != nil {
			return err
		}
		for _, e := range resp.Msg.GetEntries() {
			switch {
			case e.GetDecodeError() != "":
				fmt.Fprintf(stdout, "%d\tundecodable: %s\n", e.GetIndex(), bundle.Printable(e.GetDecodeError()))
				continue
			case e.GetRecord() == nil:
				fmt.Fprintf(stdout, "%d\terased\n", e.GetIndex())
				continue
			}
			r := e.GetRecord()
			key := r.GetKeyId()
			if key == "" {
				key = "-"
			}
			// A record's strings are printed escaped (bundle.Printable): records
			// written before the server bounded and escaped them are kept for
			// years, and none may drive the terminal or forge a line.
			fmt.Fprintf(stdout, "%d\t%s\t%s\t%s\t%s", e.GetIndex(), r.GetTime().AsTime().Format(time.RFC3339Nano),
				enumWord(r.GetOutcome(), "ACCESS_OUTCOME_"), bundle.Printable(key), shortRole(r.GetRole()))
			if sum := r.GetSummary(); sum != nil {
				fmt.Fprintf(stdout, "\t%s\n", bundle.Printable(describeSummary(sum)))
				continue
			}
			fmt.Fprintf(stdout, "\t%s\t%s\t%s", bundle.Printable(r.GetProcedure()), bundle.Printable(r.GetTenant()), bundle.Printable(r.GetTarget()))
			if r.GetCode() != "" {
				fmt.Fprintf(stdout, "\t%s: %s", bundle.Printable(r.GetCode()), bundle.Printable(r.GetReason()))
			}
			if r.AllowedIndex != nil { // an export's failure, recorded allowed before its first byte
				fmt.Fprintf(stdout, "\tthe outcome of the access allowed at %d", r.GetAllowedIndex())
			}
			fmt.Fprintln(stdout)
		}
		if next = resp.Msg.GetNextIndex(); next == 0 {
			return nil
		}
	}
}

// describeSummary prints a refusal summary on one line.
func describeSummary(s *v1.RefusalSummary) string {
	list := func(items []string, others uint32) string {
		out := strings.Join(items, ",")
		if others > 0 {
			out += fmt.Sprintf(" and %d more", others)
		}
		if out == "" {
			out = "-"
		}
		return out
	}
	// Targets are free text (a subject id may hold a comma): quoted.
	targets := make([]string, len(s.GetTargets()))
	for i, t := range s.GetTargets() {
		targets[i] = strconv.Quote(t)
	}
	return fmt.Sprintf("summary: %d more refused from %s to %s; codes %s; procedures %s; tenants %s; peers %s; keys %s; targets %s",
		s.GetCount(), s.GetFirstTime().AsTime().Format(time.RFC3339Nano), s.GetLastTime().AsTime().Format(time.RFC3339Nano),
		list(s.GetCodes(), 0), list(s.GetProcedures(), s.GetOtherProcedures()), list(s.GetTenants(), s.GetOtherTenants()),
		list(s.GetPeers(), s.GetOtherPeers()), list(s.GetKeyIds(), s.GetOtherKeyIds()), list(targets, s.GetOtherTargets()))
}
