package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func TestHandler(t *testing.T) {
	h, err := newHandler(fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html><script type=module src=/ui/assets/app-1.js></script>")},
		"assets/app-1.js":     {Data: []byte("console.log(1)")},
		"assets/style-2.css":  {Data: []byte("body{}")},
		"favicon.svg":         {Data: []byte("<svg/>")},
		"assets/unknown.blob": {Data: []byte{1, 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api "+r.URL.Path) })
	mux := withConsole(api, h)
	for _, tc := range []struct {
		method, path string
		code         int
		ctype, body  string
		cache        string
	}{
		{"GET", "/ui/", 200, "text/html; charset=utf-8", "<!doctype html>", "no-cache"},
		{"GET", "/ui/index.html", 200, "text/html; charset=utf-8", "<!doctype html>", "no-cache"},
		{"GET", "/ui/traces/0102", 200, "text/html; charset=utf-8", "<!doctype html>", "no-cache"}, // routed in the browser
		{"HEAD", "/ui/erasure", 200, "text/html; charset=utf-8", "", "no-cache"},
		{"GET", "/ui/assets/app-1.js", 200, "text/javascript; charset=utf-8", "console.log(1)", "public, max-age=31536000, immutable"},
		{"GET", "/ui/assets/style-2.css", 200, "text/css; charset=utf-8", "body{}", "public, max-age=31536000, immutable"},
		{"GET", "/ui/favicon.svg", 200, "image/svg+xml", "<svg/>", "no-cache"},
		{"GET", "/ui/assets/unknown.blob", 200, "application/octet-stream", "\x01\x02", "public, max-age=31536000, immutable"},
		{"GET", "/ui/assets/missing.js", 404, "", "", ""}, // a missing file is not the app
		{"GET", "/ui/../../etc/passwd", 307, "", "", ""},  // the mux redirects to the clean path; files come only from the embedded build
		{"GET", "/ui/assets/../../../x.js", 307, "", "", ""},
		{"POST", "/ui/", 405, "", "", ""},                                    // the console only reads
		{"GET", "/veritrace.v1.LedgerService/GetEntry", 200, "", "api ", ""}, // everything else is the API
		{"GET", "/", 302, "", "", ""},
		{"GET", "/ui", 307, "", "", ""},                                            // the mux's redirect to /ui/
		{"GET", "/x/../ui/", 307, "", "", ""},                                      // cleaned by the mux
		{"GET", "/etc/passwd", 200, "", "api ", ""},                                // what a client makes of /ui/%2e%2e/%2e%2e/etc/passwd
		{"POST", "/veritrace.v1.AuditService/GetTrace", 200, "", "api ", ""},       // an API answer
		{"GET", "/ui/assets/missing.js", 404, "text/plain; charset=utf-8", "", ""}, // a 404 of the console's
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		res := w.Result()
		if res.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.code)
			continue
		}
		body, _ := io.ReadAll(res.Body)
		if tc.body != "" && !strings.HasPrefix(string(body), tc.body) {
			t.Errorf("%s %s: body %q, want %q...", tc.method, tc.path, body, tc.body)
		}
		if tc.ctype != "" && res.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, res.Header.Get("Content-Type"), tc.ctype)
		}
		if tc.cache != "" && res.Header.Get("Cache-Control") != tc.cache {
			t.Errorf("%s %s: Cache-Control %q, want %q", tc.method, tc.path, res.Header.Get("Cache-Control"), tc.cache)
		}
		// Every answer carries the headers: the console's, the mux's
		// redirects, and the API's (whose answers hold personal data: never
		// cached either).
		{
			for k, v := range securityHeaders {
				if res.Header.Get(k) != v {
					t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, k, res.Header.Get(k), v)
				}
			}
		}
		if !strings.HasPrefix(tc.path, Prefix) && tc.path != "/" && res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control %q, want no-store", tc.method, tc.path, res.Header.Get("Cache-Control"))
		}
		if tc.path == "/" && res.Header.Get("Location") != Prefix {
			t.Errorf("GET / redirects to %q, want %s", res.Header.Get("Location"), Prefix)
		}
	}
	// Conditional requests: the ETag is the content's.
	req := httptest.NewRequest("GET", "/ui/assets/app-1.js", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	etag := w.Result().Header.Get("ETag")
	req.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if etag == "" || w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d, want 304", etag, w.Code)
	}
	// TLS responses tell browsers to stay on HTTPS.
	req = httptest.NewRequest("GET", "https://example.test/ui/", nil)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Result().Header.Get("Strict-Transport-Security") == "" {
		t.Error("no Strict-Transport-Security over TLS")
	}
}

// TestPolicy pins what the Content-Security-Policy forbids.
func TestPolicy(t *testing.T) {
	csp := securityHeaders["Content-Security-Policy"]
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %q", csp, bad)
		}
	}
}

// TestEmbeddedBuild checks the committed build the binary embeds: an
// index.html whose scripts and styles are files of the build, none inline
// and none from elsewhere.
func TestEmbeddedBuild(t *testing.T) {
	h := Handler().(*handler)
	if h.index == nil {
		t.Fatal("the embedded build has no index.html")
	}
	index := string(h.index.body)
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 2 {
		t.Fatalf("index.html references %d files: %s", len(refs), index)
	}
	for _, m := range refs {
		rel, ok := strings.CutPrefix(m[1], Prefix)
		if !ok || h.files[rel] == nil {
			t.Errorf("index.html references %s, which is not in the build", m[1])
		}
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(index) || strings.Contains(index, "http://") || strings.Contains(index, "https://") {
		t.Errorf("index.html has inline script or names another origin:\n%s", index)
	}
	for name, f := range h.files {
		if strings.HasSuffix(name, ".js") && (strings.Contains(string(f.body), "sourceMappingURL")) {
			t.Errorf("%s carries a source map reference", name)
		}
	}
}
