package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/veritrace/veritrace/ledger"
)

func runVerifyLog(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify-log", flag.ContinueOnError)
	dir := fs.String("data", envOr("VERITRACE_DATA", "veritrace-data"), "data directory; the server must be stopped ($VERITRACE_DATA)")
	masterFile := fs.String("master-key-file", os.Getenv("VERITRACE_MASTER_KEY_FILE"), "master key file (default DATA/master.key; $VERITRACE_MASTER_KEY_FILE); needed to read Badger's encrypted files, never to decrypt payloads")
	keyFile := fs.String("key", "", "verifier key file (default DATA/log.pub); pin one obtained out of band")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	if *masterFile == "" {
		*masterFile = filepath.Join(*dir, ledger.MasterKeyFile)
	}
	master, err := ledger.ReadMasterKey(*masterFile)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		*keyFile = filepath.Join(*dir, ledger.VerifierKeyFile)
	}
	vkey, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	results, err := ledger.VerifyDir(ctx, *dir, master, strings.TrimSpace(string(vkey)))
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if len(r.Problems) == 0 {
			fmt.Fprintf(stdout, "ok    tenant %s: %d entries, root %x, %d signed checkpoints verified\n", r.Tenant, r.Size, r.Root[:], r.Checkpoints)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL  tenant %s: %d entries, first bad index %d\n", r.Tenant, r.Size, r.Problems[0].Index)
		for i, p := range r.Problems {
			if i == 20 {
				break
			}
			fmt.Fprintf(stdout, "      index %d: %s\n", p.Index, p.Detail)
		}
		if more := len(r.Problems) + r.Omitted - 20; more > 0 {
			fmt.Fprintf(stdout, "      ... %d more\n", more)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d tenant log(s) failed verification", failed)
	}
	return nil
}
