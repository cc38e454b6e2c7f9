package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// healthPath is the gRPC health check's procedure, served (without an API
// key) over Connect, gRPC and gRPC-Web.
const healthPath = "/grpc.health.v1.Health/Check"

// healthServices are the services the health check answers for, after
// the server as a whole ("").
var healthServices = []string{"", veritracev1connect.IngestServiceName, veritracev1connect.LedgerServiceName,
	veritracev1connect.AuditServiceName, veritracev1connect.RetentionServiceName, veritracev1connect.AdminServiceName,
	veritracev1connect.IdentityServiceName}

// healthHints say what a NOT_SERVING answer means and where to look.
var healthHints = map[string]string{
	"":                                   "the ledger has failed (its log says why; restart once the cause is fixed) or disk space is below --min-free-bytes (appends are refused, reads go on)",
	veritracev1connect.IngestServiceName: "the ledger has failed, or disk space is below --min-free-bytes: appends are refused",
	veritracev1connect.RetentionServiceName: "an erasure or sweep is unfinished on this server: its log names it (\"could not be finished\"); " +
		"`veritrace erasures` (compliance officer) lists it as executing; it is retried every 10 minutes and at the next start",
}

// defaultHealthTimeout bounds a whole `veritrace health`: a server that
// accepts connections and never answers fails the check rather than
// hanging the script or probe that runs it.
const defaultHealthTimeout = 10 * time.Second

func runHealth(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	addr := fs.String("addr", envOr("VERITRACE_ADDR", "http://127.0.0.1:7070"), "server URL ($VERITRACE_ADDR)")
	timeout := fs.Duration("timeout", defaultHealthTimeout, "how long to wait for the whole check's answers")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var down []string
	for _, svc := range healthServices {
		status, err := checkHealth(ctx, http.DefaultClient, *addr, svc)
		if err != nil && ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("health check: no answer from %s within %s (--timeout): the server is not answering, or not at that address", *addr, *timeout)
		}
		if err != nil {
			return err
		}
		name := svc
		if name == "" {
			name = "server"
		}
		fmt.Fprintf(stdout, "%-12s %s\n", status, name)
		if status != "SERVING" {
			down = append(down, name)
			if h := healthHints[svc]; h != "" {
				fmt.Fprintf(stdout, "             %s\n", h)
			}
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("not serving: %s", strings.Join(down, ", "))
	}
	return nil
}

// checkHealth asks the server's health check about service ("" for the
// server) over the Connect protocol with JSON, as curl would, and returns
// the status it answers: SERVING or NOT_SERVING.
func checkHealth(ctx context.Context, hc *http.Client, addr, service string) (string, error) {
	body, _ := json.Marshal(map[string]string{"service": service})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(addr, "/")+healthPath, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("--addr %s: %w", addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("health check of %q: HTTP %d: %s", service, resp.StatusCode, bytes.TrimSpace(b))
	}
	var out struct {
		Status string `json:"status"` // SERVING_STATUS_SERVING, proto JSON's enum name
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Status == "" {
		return "", fmt.Errorf("health check of %q: not a health check answer (is %s a Veritrace server?)", service, addr)
	}
	return strings.TrimPrefix(out.Status, "SERVING_STATUS_"), nil
}
