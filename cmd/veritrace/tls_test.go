package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/credentials"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool trusting the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	return selfSignedFor(t, dir, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// selfSignedFor is selfSigned with the given validity.
func selfSignedFor(t *testing.T, dir string, notBefore, notAfter time.Time) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veritrace test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	addr, stop := startServe(t, serveConfig{DataDir: dir, TLSCert: certFile, TLSKey: keyFile})
	ctx := context.Background()
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	hc := &http.Client{Transport: transport}
	admin, err := os.ReadFile(filepath.Join(dir, AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	bearer := connect.WithInterceptors(rpc.ClientHeaders("", strings.TrimSpace(string(admin))))
	for name, opts := range map[string][]connect.ClientOption{"connect": {bearer}, "grpc": {bearer, connect.WithGRPC()}} {
		c := veritracev1connect.NewLedgerServiceClient(hc, "https://"+addr, opts...)
		if _, err := c.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true})); err != nil {
			t.Errorf("%s over TLS: GetCheckpoint() = %v", name, err)
		}
	}
	// Plaintext to the TLS port is refused.
	plain := veritracev1connect.NewLedgerServiceClient(http.DefaultClient, "http://"+addr)
	if _, err := plain.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{})); err == nil {
		t.Error("plaintext request to the TLS server succeeded")
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestServeBadTLS: a TLS certificate or key that cannot serve is reported
// before anything touches the data directory: no directory, no keys, no
// admin key, nothing logged as serving.
func TestServeBadTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	otherCert, otherKey, _ := selfSigned(t, t.TempDir())
	expiredCert, expiredKey, _ := selfSignedFor(t, t.TempDir(), time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate\n"), 0o600)
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing cert", filepath.Join(dir, "nope.crt"), keyFile, "nope.crt"},
		{"missing key", certFile, filepath.Join(dir, "nope.key"), "nope.key"},
		{"garbage cert", garbage, keyFile, "garbage.pem"},
		{"garbage key", certFile, garbage, "garbage.pem"},
		{"key of another cert", certFile, otherKey, otherKey},
		{"cert of another key", otherCert, keyFile, otherCert},
		{"expired cert", expiredCert, expiredKey, "not now"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			var logs strings.Builder
			log := slog.New(slog.NewTextHandler(&logs, nil))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := serve(ctx, serveConfig{DataDir: data, Listen: "127.0.0.1:0", TLSCert: tc.cert, TLSKey: tc.key,
				MaxRequestBytes: 4 << 20, CheckpointInterval: time.Second, ShutdownTimeout: time.Second, LogLevel: "info"}, log)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("serve() = %v, want an error naming %s", err, tc.want)
			}
			if _, serr := os.Stat(data); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("the data directory was created (%v) before the TLS files were checked", serr)
			}
			if strings.Contains(logs.String(), "serving") {
				t.Errorf("logged as serving:\n%s", logs.String())
			}
		})
	}
}

// TestServeTLSOTLP: the official gRPC and HTTP exporters over TLS, on the
// main port and on a dedicated OTLP listener.
func TestServeTLSOTLP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	otlpAddr := freeAddr(t)
	addr, stop := startServe(t, serveConfig{DataDir: dir, TLSCert: certFile, TLSKey: keyFile, OTLPGRPCListen: otlpAddr})
	defer stop()
	waitListening(t, otlpAddr)
	ctx := context.Background()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	admin, err := os.ReadFile(filepath.Join(dir, AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ac := veritracev1connect.NewAdminServiceClient(hc, "https://"+addr, connect.WithInterceptors(rpc.ClientHeaders("", strings.TrimSpace(string(admin)))))
	key, err := ac.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: v1.Role_ROLE_INGESTER, Tenants: []string{"default"}}))
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{"Authorization": "Bearer " + key.Msg.Token}
	for name, mk := range map[string]func() (sdktrace.SpanExporter, error){
		"grpc on the main port": func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithTLSCredentials(credentials.NewClientTLSFromCert(pool, "")),
				otlptracegrpc.WithHeaders(headers), otlptracegrpc.WithCompressor("gzip"))
		},
		"grpc on the OTLP listener": func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(otlpAddr), otlptracegrpc.WithTLSCredentials(credentials.NewClientTLSFromCert(pool, "")),
				otlptracegrpc.WithHeaders(headers))
		},
		"http": func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(addr), otlptracehttp.WithTLSClientConfig(&tls.Config{RootCAs: pool}),
				otlptracehttp.WithHeaders(headers))
		},
	} {
		exp, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		_, spans := agentTrace(t)
		if err := exp.ExportSpans(ctx, spans); err != nil {
			t.Errorf("%s over TLS: %v", name, err)
		}
		exp.Shutdown(ctx)
	}
}
