package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/console"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/retention"
)

// AdminKeyFile is where the first start writes the bootstrap admin key.
const AdminKeyFile = ledger.AdminKeyFile

// serveConfig is the server's configuration, from flags and environment.
type serveConfig struct {
	DataDir              string        // data directory (default ./veritrace-data)
	Listen               string        // listen address (default 127.0.0.1:7070)
	TLSCert, TLSKey      string        // serve TLS when both are set
	MasterKeyFile        string        // default DataDir/master.key, generated on first start
	SigningKeyFile       string        // default DataDir/log.key, generated on first start
	MaxRequestBytes      int           // request message limit (default 4 MiB)
	MaxTraceBytes        int           // span content one GetTrace answer gives; the rest is paged (0: default 4 MiB)
	CheckpointInterval   time.Duration // how often checkpoints are signed while entries arrive (default 1s)
	ShutdownTimeout      time.Duration // how long in-flight requests may take at shutdown (default 30s)
	LogLevel             string        // debug, info, warn, error
	PprofListen          string        // serve net/http/pprof on this address when set
	AllowPlaintextKeys   bool          // accept API keys over plaintext from non-loopback peers (behind a TLS proxy)
	SweepInterval        time.Duration // how often expired payloads are swept (0: never; default 1h); plans whose lease ended are taken over every 10m regardless
	MinFreeBytes         int64         // free disk space below which appends are refused (0: no reserve; default 1 GiB)
	Console              bool          // serve the web console under /ui/ (default true)
	OTLPGRPCListen       string        // also serve OTLP (gRPC and HTTP) on this address, e.g. 127.0.0.1:4317
	OTLPHTTPListen       string        // also serve OTLP (HTTP and gRPC) on this address, e.g. 127.0.0.1:4318
	OTLPMaxBytes         int           // OTLP request limit after decompression (default 16 MiB)
	OTLPConfigFile       string        // per-tenant OTLP mapping configuration (JSON, docs/OTLP.md)
	OTLPMaxConcurrent    int           // OTLP exports read and handled at once (default 64)
	OTLPMaxKeyConcurrent int           // OTLP exports of one API key read and handled at once (0: half of OTLPMaxConcurrent)
	MaxInflightBytes     int64         // bytes of appends read and handled at once (0: 64 × MaxRequestBytes)
	MaxQueueWait         time.Duration // how long an append waits for room (0: as long as its client waits; flag default 1m)
	MaxKeyInflightBytes  int64         // bytes of appends one API key holds at once (0: half of MaxInflightBytes)
	BodyTimeout          time.Duration // how long an admitted append's body may send nothing (default 30s)
	MinBodyRate          int64         // least average rate of an admitted append's body past BodyTimeout, bytes/s (default 64 KiB/s)
	Node                 string        // this process's name among those sharing the database (default: DATA/node)
}

// otlpConfigFile is the JSON of --otlp-config.
type otlpConfigFile struct {
	Default otlp.Config            `json:"default"`
	Tenants map[string]otlp.Config `json:"tenants"`
}

// loadOTLPConfig reads and checks --otlp-config.
func loadOTLPConfig(path string) (rpc.OTLPOptions, error) {
	var o rpc.OTLPOptions
	if path == "" {
		return o, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return o, fmt.Errorf("--otlp-config: %w", err)
	}
	var f otlpConfigFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return o, fmt.Errorf("--otlp-config %s: %w", path, err)
	}
	check := func(where string, c otlp.Config) error {
		for _, list := range [][]string{c.SubjectAttributes, c.SessionAttributes} {
			for _, a := range list {
				if a == "" || len(a) > 255 {
					return fmt.Errorf("--otlp-config %s: %s: attribute names must be 1 to 255 bytes", path, where)
				}
			}
		}
		return nil
	}
	if err := check("default", f.Default); err != nil {
		return o, err
	}
	for t, c := range f.Tenants {
		if err := format.ValidateTenant(t); err != nil {
			return o, fmt.Errorf("--otlp-config %s: tenant %q: %v", path, t, err)
		}
		if err := check("tenant "+t, c); err != nil {
			return o, err
		}
	}
	o.Default, o.Tenants = f.Default, f.Tenants
	return o, nil
}

func (c *serveConfig) validate() error {
	if c.DataDir == "" {
		return errors.New("--data must not be empty")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.MaxRequestBytes < 1024 {
		return fmt.Errorf("--max-request-bytes %d is below 1024", c.MaxRequestBytes)
	}
	if c.MaxTraceBytes != 0 && c.MaxTraceBytes < 1024 {
		return fmt.Errorf("--max-trace-answer-bytes %d is below 1024", c.MaxTraceBytes)
	}
	if c.MinFreeBytes < 0 {
		return fmt.Errorf("--min-free-bytes %d is negative", c.MinFreeBytes)
	}
	if c.SweepInterval < 0 {
		return fmt.Errorf("--sweep-interval %s is negative", c.SweepInterval)
	}
	if c.OTLPMaxBytes < 1024 {
		return fmt.Errorf("--otlp-max-bytes %d is below 1024", c.OTLPMaxBytes)
	}
	if c.MaxInflightBytes < 0 {
		return fmt.Errorf("--max-inflight-bytes %d is negative", c.MaxInflightBytes)
	}
	if most := int64(max(c.MaxRequestBytes, c.OTLPMaxBytes)); c.MaxInflightBytes > 0 && c.MaxInflightBytes < most {
		return fmt.Errorf("--max-inflight-bytes %d is below the largest request (--max-request-bytes, --otlp-max-bytes: %d): such a request could never be handled", c.MaxInflightBytes, most)
	}
	if c.Node != "" && !validNodeName(c.Node) {
		return fmt.Errorf("--node %q: a node name is 1 to %d of A-Z a-z 0-9 . _ -", c.Node, maxNodeName)
	}
	if c.OTLPMaxConcurrent < 1 {
		return fmt.Errorf("--otlp-max-concurrent %d is below 1", c.OTLPMaxConcurrent)
	}
	if c.OTLPMaxKeyConcurrent < 0 {
		return fmt.Errorf("--otlp-max-key-concurrent %d is negative", c.OTLPMaxKeyConcurrent)
	}
	if c.MaxKeyInflightBytes < 0 {
		return fmt.Errorf("--max-key-inflight-bytes %d is negative", c.MaxKeyInflightBytes)
	}
	if most := int64(max(c.MaxRequestBytes, c.OTLPMaxBytes)); c.MaxKeyInflightBytes > 0 && c.MaxKeyInflightBytes < most {
		return fmt.Errorf("--max-key-inflight-bytes %d is below the largest request (--max-request-bytes, --otlp-max-bytes: %d): such a request could never be handled", c.MaxKeyInflightBytes, most)
	}
	if c.BodyTimeout < time.Second {
		return fmt.Errorf("--body-timeout %s is below 1s", c.BodyTimeout)
	}
	if c.MinBodyRate < 1024 {
		return fmt.Errorf("--min-body-rate %d is below 1024 bytes a second", c.MinBodyRate)
	}
	if c.MaxQueueWait < 0 {
		return fmt.Errorf("--max-queue-wait %s is negative", c.MaxQueueWait)
	}
	if c.CheckpointInterval < 10*time.Millisecond {
		return fmt.Errorf("--checkpoint-interval %s is below 10ms", c.CheckpointInterval)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %v", err)
	}
	return nil
}

// rpcOptions returns the API's options that c sets (its limits); serve
// adds the logger, the retention service, OTLP and the clock.
func (c *serveConfig) rpcOptions() rpc.Options {
	return rpc.Options{MaxRequestBytes: c.MaxRequestBytes, MaxTraceAnswerBytes: c.MaxTraceBytes, AllowPlaintextKeys: c.AllowPlaintextKeys,
		MaxInflightBytes: c.MaxInflightBytes, MaxQueueWait: &c.MaxQueueWait, MaxKeyInflightBytes: c.MaxKeyInflightBytes,
		BodyTimeout: c.BodyTimeout, MinBodyRate: c.MinBodyRate}
}

func runServe(ctx context.Context, args []string, _ io.Writer) error {
	c, err := parseServe(args)
	if err != nil {
		return err
	}
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	return serve(ctx, c, log)
}

// parseServe returns the configuration serve's flags (and environment)
// give, validated.
func parseServe(args []string) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.DataDir, "data", envOr("VERITRACE_DATA", "veritrace-data"), "data directory ($VERITRACE_DATA)")
	fs.StringVar(&c.Listen, "listen", envOr("VERITRACE_LISTEN", "127.0.0.1:7070"), "listen address ($VERITRACE_LISTEN)")
	fs.StringVar(&c.TLSCert, "tls-cert", os.Getenv("VERITRACE_TLS_CERT"), "TLS certificate file; serve TLS with --tls-key ($VERITRACE_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", os.Getenv("VERITRACE_TLS_KEY"), "TLS private key file ($VERITRACE_TLS_KEY)")
	fs.StringVar(&c.MasterKeyFile, "master-key-file", os.Getenv("VERITRACE_MASTER_KEY_FILE"), "master key file (default DATA/master.key, generated on first start; $VERITRACE_MASTER_KEY_FILE)")
	fs.StringVar(&c.SigningKeyFile, "signing-key-file", os.Getenv("VERITRACE_SIGNING_KEY_FILE"), "log signing key file (default DATA/log.key, generated on first start; $VERITRACE_SIGNING_KEY_FILE)")
	fs.IntVar(&c.MaxRequestBytes, "max-request-bytes", rpc.DefaultMaxRequestBytes, "largest request message accepted")
	fs.IntVar(&c.MaxTraceBytes, "max-trace-answer-bytes", rpc.DefaultMaxTraceAnswerBytes, "span content one GetTrace answer gives (and holds in memory); a larger trace is answered in pages, which `veritrace trace` and the console follow")
	fs.DurationVar(&c.CheckpointInterval, "checkpoint-interval", time.Second, "how often a checkpoint is signed while entries arrive")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may finish at shutdown")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.AllowPlaintextKeys, "allow-plaintext-keys", false, "accept API keys over plaintext HTTP from non-loopback addresses (only behind a proxy that terminates TLS)")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", time.Hour, "how often payloads past their retention are expired (0 disables; compliance officers can also sweep on demand; plans of a failed process are taken over every 10m either way)")
	fs.Int64Var(&c.MinFreeBytes, "min-free-bytes", ledger.DefaultMinFreeBytes, "free disk space to keep on the data directory's filesystem: below it appends are refused (resource_exhausted) until space returns; 0 disables")
	fs.BoolVar(&c.Console, "console", true, "serve the web console under /ui/ on the API's port")
	fs.StringVar(&c.OTLPGRPCListen, "otlp-grpc-listen", os.Getenv("VERITRACE_OTLP_GRPC_LISTEN"), "also serve OpenTelemetry ingest on this address (the SDKs' gRPC default is 4317); the main port serves it too ($VERITRACE_OTLP_GRPC_LISTEN)")
	fs.StringVar(&c.OTLPHTTPListen, "otlp-http-listen", os.Getenv("VERITRACE_OTLP_HTTP_LISTEN"), "also serve OpenTelemetry ingest on this address (the SDKs' HTTP default is 4318; $VERITRACE_OTLP_HTTP_LISTEN)")
	fs.IntVar(&c.OTLPMaxBytes, "otlp-max-bytes", otlp.DefaultMaxBytes, "largest OTLP request accepted, after decompression")
	fs.StringVar(&c.OTLPConfigFile, "otlp-config", os.Getenv("VERITRACE_OTLP_CONFIG"), "JSON file of per-tenant OTLP mapping settings (subject and session attributes; docs/OTLP.md; $VERITRACE_OTLP_CONFIG)")
	fs.IntVar(&c.OTLPMaxConcurrent, "otlp-max-concurrent", rpc.DefaultOTLPMaxConcurrent, "OTLP exports (gRPC and HTTP, all listeners) decoded and handled at once, the bound of decoding work; more wait for a slot within --max-queue-wait, then are refused unavailable (retryable)")
	fs.IntVar(&c.OTLPMaxKeyConcurrent, "otlp-max-key-concurrent", 0, "OTLP exports of one API key handled at once under --otlp-max-concurrent; its further exports wait for its share, then for a slot (0: half of --otlp-max-concurrent, at least 1; at most --otlp-max-concurrent)")
	fs.Int64Var(&c.MaxInflightBytes, "max-inflight-bytes", 0, "bytes of append requests (AppendSpans, RegisterVersion, OTLP) read and handled at once, server-wide; more wait for room (0: 64 × --max-request-bytes, at least --otlp-max-bytes)")
	fs.DurationVar(&c.MaxQueueWait, "max-queue-wait", rpc.DefaultMaxQueueWait, "how long an append waits for room under --max-inflight-bytes (and an OTLP export, in all, for its bytes and an export slot) before it is refused (resource_exhausted; unavailable for a slot); 0: as long as its client waits")
	fs.Int64Var(&c.MaxKeyInflightBytes, "max-key-inflight-bytes", 0, "bytes of append requests one API key holds at once under --max-inflight-bytes; its further appends wait (0: half of --max-inflight-bytes, at least the largest request)")
	fs.DurationVar(&c.BodyTimeout, "body-timeout", rpc.DefaultBodyTimeout, "how long an admitted append's body may send nothing before it is cut and its room under --max-inflight-bytes given back")
	fs.Int64Var(&c.MinBodyRate, "min-body-rate", rpc.DefaultMinBodyRate, "least average rate, in bytes a second, at which an admitted append's body must arrive once --body-timeout has passed since its admission; a body behind it is cut and its room under --max-inflight-bytes given back (at least 1024)")
	fs.StringVar(&c.Node, "node", os.Getenv("VERITRACE_NODE"), "this process's name among the processes sharing the database, in the leases of erasures and sweeps it works on (default: the name in DATA/node, made at the first start from the host name; two processes running at once must never share a name; $VERITRACE_NODE)")
	fs.StringVar(&c.PprofListen, "pprof-listen", "", "serve Go profiles (net/http/pprof: CPU, heap, mutex, block) on this address, e.g. 127.0.0.1:6060; off by default")
	if err := fs.Parse(args); err != nil {
		return serveConfig{}, err
	}
	if err := c.validate(); err != nil {
		return serveConfig{}, err
	}
	return c, nil
}

// clock is the server's clock: of the ledger (appended_at, expiry days),
// retention and the RPC layer. Tests of the server process shift it to
// reach retention periods; nothing else changes it.
var clock = time.Now

// serve runs the server until ctx ends, then shuts down gracefully: it
// stops accepting, lets in-flight requests (appends included) finish, and
// closes the ledger.
func serve(ctx context.Context, c serveConfig, log *slog.Logger) error {
	// A certificate that cannot serve is reported before anything touches
	// the data directory.
	var certs []tls.Certificate
	if c.TLSCert != "" {
		cert, err := loadTLS(c.TLSCert, c.TLSKey, time.Now())
		if err != nil {
			return err
		}
		certs = []tls.Certificate{cert}
	}
	// So are a bad node name and a bad --otlp-config: nothing below is
	// created before every check that needs no disk change has passed.
	node, nodeMissing, err := readNodeName(c.Node, c.DataDir)
	if err != nil {
		return err
	}
	otlpOpts, err := loadOTLPConfig(c.OTLPConfigFile)
	if err != nil {
		return err
	}
	otlpOpts.MaxBytes, otlpOpts.MaxConcurrent, otlpOpts.MaxKeyConcurrent = c.OTLPMaxBytes, c.OTLPMaxConcurrent, c.OTLPMaxKeyConcurrent
	// Every listener is claimed before the data directory is touched: a
	// port in use (a server already running) changes nothing on disk.
	lns, err := claimListeners(c)
	if err != nil {
		return err
	}
	closeListeners := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	keys, created, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: c.DataDir, MasterKey: c.MasterKeyFile, SigningKey: c.SigningKeyFile})
	if err != nil {
		closeListeners()
		return fmt.Errorf("keys: %w", err)
	}
	if created {
		log.Info("generated keys", "dir", c.DataDir, "verifier_key_file", filepath.Join(c.DataDir, ledger.VerifierKeyFile))
	}
	reserve := c.MinFreeBytes
	if reserve == 0 {
		reserve = -1 // no reserve
	}
	l, err := ledger.Open(ctx, ledger.Options{Dir: c.DataDir, Keys: keys, CheckpointInterval: c.CheckpointInterval, Logger: log, MinFreeBytes: reserve, Now: clock})
	if err != nil {
		closeListeners()
		return err
	}
	adminFile := filepath.Join(c.DataDir, AdminKeyFile)
	if id, err := rpc.Bootstrap(ctx, l, adminFile, clock()); err != nil {
		closeListeners()
		l.Close()
		return err
	} else if id != "" {
		log.Info("created the first admin key", "key_id", id, "token_file", adminFile)
	}
	// A missing node file is made last, once start-up can no longer fail
	// (the ledger's directory lock keeps a second process out meanwhile).
	if nodeMissing {
		if node, err = storeNodeName(c.DataDir); err != nil {
			closeListeners()
			l.Close()
			return err
		}
		log.Info("named this node", "node", node, "file", filepath.Join(c.DataDir, NodeFile))
	}
	ret := &retention.Service{L: l, SessionField: audit.FieldSession, Log: log, Now: clock, Node: node}
	sweepCtx, stopSweeps := context.WithCancel(context.Background())
	sweeps := make(chan struct{})
	go func() {
		defer close(sweeps)
		// Erasures and sweeps a crash interrupted are finished while the
		// server serves: one that cannot be finished is logged and kept
		// for the next start, and RetentionService reports NOT_SERVING
		// meanwhile; it never keeps the server from starting. Holds an
		// earlier build stored with an id in the clear are upgraded first
		// (named by pseudonyms, as erasures and sweeps then read them).
		if err := ret.UpgradeHolds(sweepCtx); err != nil && sweepCtx.Err() == nil {
			log.Error("upgrade holds of an earlier build", "err", err)
		}
		if err := ret.Resume(sweepCtx); err != nil && sweepCtx.Err() == nil {
			log.Error("resume erasures", "err", err)
		}
		// Run also takes over plans whose process died (their lease
		// ended), with sweeps disabled too.
		ret.Run(sweepCtx, c.SweepInterval)
	}()
	opts := c.rpcOptions()
	opts.Logger, opts.Retention, opts.OTLP, opts.Now = log, ret, otlpOpts, clock
	type listener struct {
		name string
		ln   net.Listener
		srv  *http.Server
	}
	api := rpc.NewHandler(l, opts)
	var handler http.Handler = api
	if c.Console {
		handler = console.WithConsole(api)
	}
	listeners := []listener{{"serving", lns[0], newServer(c, handler, log, certs)}}
	for _, eln := range lns[1:] {
		listeners = append(listeners, listener{"serving OTLP", eln, newServer(c, api.OTLPHandler(), log, certs)})
	}
	if c.PprofListen != "" {
		go servePprof(c.PprofListen, log)
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	errc := make(chan error, len(listeners))
	deadline := time.Now().Add(c.ShutdownTimeout)
	for _, o := range listeners {
		log.Info(o.name, "addr", scheme+"://"+o.ln.Addr().String(), "data", c.DataDir, "node", node, "verifier_key", l.VerifierKey())
		go func() {
			if c.TLSCert != "" {
				errc <- o.srv.ServeTLS(o.ln, "", "") // the certificate loaded at start
			} else {
				errc <- o.srv.Serve(o.ln)
			}
		}()
	}
	if c.Console {
		log.Info("web console", "url", scheme+"://"+lns[0].Addr().String()+console.Prefix)
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
		deadline = time.Now().Add(c.ShutdownTimeout)
	}
	// Stop every listener and let in-flight requests finish; requests
	// waiting for room are answered unavailable at once (rpc.Handler.Shutdown).
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	var servers []*http.Server
	for _, o := range listeners {
		servers = append(servers, o.srv)
	}
	if serr := api.Shutdown(sctx, servers...); err == nil {
		err = serr
	}
	cancel()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	// Closing the ledger (which drains the writer, signs last checkpoints
	// and flushes Badger's memtables) runs under what is left of the
	// shutdown timeout, at least a second: Badger retries a failed flush
	// forever, e.g. when the data directory was removed. The access log's
	// pending refusal summaries are written first.
	closed := make(chan error, 1)
	go func() {
		// Every handler has returned before the ledger closes under it
		// (past the deadline the servers were closed, which ended the
		// requests' contexts).
		api.Wait(context.Background())
		stopSweeps()
		<-sweeps
		herr := api.Close(context.Background())
		closed <- errors.Join(herr, l.Close())
	}()
	select {
	case cerr := <-closed:
		if cerr != nil && err == nil {
			err = cerr
		}
	case <-time.After(max(time.Until(deadline), time.Second)):
		log.Error("the ledger did not close within the shutdown timeout; exiting without a clean close. Every acknowledged append was durable before it was acknowledged; the next start recovers the rest", "shutdown_timeout", c.ShutdownTimeout)
		return fmt.Errorf("ledger did not close within --shutdown-timeout %s", c.ShutdownTimeout)
	}
	log.Info("stopped")
	return err
}

// claimListeners listens on the API's address (first) and on the OTLP
// addresses that are set, in that order; on any failure it closes those
// it claimed and names the flag whose address is taken.
func claimListeners(c serveConfig) ([]net.Listener, error) {
	var lns []net.Listener
	for _, a := range []struct{ flag, addr string }{{"--listen", c.Listen}, {"--otlp-grpc-listen", c.OTLPGRPCListen}, {"--otlp-http-listen", c.OTLPHTTPListen}} {
		if a.addr == "" && a.flag != "--listen" {
			continue
		}
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("%s %s: the address is in use (another veritrace server running?); nothing was created or opened: %w", a.flag, a.addr, err)
			}
			return nil, fmt.Errorf("%s %s: %w", a.flag, a.addr, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// newServer is an HTTP server for the API: HTTP/1.1 and HTTP/2 (h2c
// without TLS, for gRPC clients), with the server's timeouts; with TLS it
// serves certs, loaded at start.
func newServer(c serveConfig, h http.Handler, log *slog.Logger, certs []tls.Certificate) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Protocols:         new(http.Protocols),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		HTTP2:             rpc.HTTP2Config(),
	}
	srv.Protocols.SetHTTP1(true)
	if c.TLSCert != "" {
		srv.Protocols.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: certs}
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	return srv
}

// loadTLS loads a TLS certificate and its private key and checks that they
// match and that the certificate is valid now.
func loadTLS(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	if leaf := cert.Leaf; leaf != nil && (now.Before(leaf.NotBefore) || now.After(leaf.NotAfter)) {
		return cert, fmt.Errorf("--tls-cert %s is valid from %s to %s, not now", certFile,
			leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

// Sampling rates of the mutex and block profiles while --pprof-listen is
// set: one contention event in 10, one blocking event per 100 µs spent
// blocked. Both are off (Go's default) without it.
const (
	pprofMutexFraction = 10
	pprofBlockRate     = int(100 * time.Microsecond)
)

// servePprof serves Go's profiling endpoints on their own listener, apart
// from the API, for operators measuring a live server: CPU, heap, and
// mutex and block profiles (/debug/pprof/mutex, /debug/pprof/block, with
// ?seconds=N for the contention of the last N seconds).
func servePprof(addr string, log *slog.Logger) {
	runtime.SetMutexProfileFraction(pprofMutexFraction)
	runtime.SetBlockProfileRate(pprofBlockRate)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving pprof", "addr", addr)
	if err := srv.ListenAndServe(); err != nil {
		log.Error("pprof listener", "err", err)
	}
}
