package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is the path the console is served under.
const Prefix = "/ui/"

//go:embed all:dist
var dist embed.FS

// securityHeaders are set on every console response. The policy allows
// scripts, styles, images and fonts from the console's own origin only,
// network requests to the same origin only (the API), no plugins, no
// framing, no inline script or eval, and DOM sinks only through Trusted
// Types (the console uses none).
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; " +
		"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
		"object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
}

// file is an embedded file, with its content type and a strong ETag.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// handler serves the console's files from memory.
type handler struct {
	files map[string]*file // by path relative to dist, e.g. "index.html", "assets/app-1a2b.js"
	index *file
}

// contentTypes are the types of the files a build holds; anything else is
// served as application/octet-stream (and, with nosniff, not executed).
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".json":  "application/json",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

func newHandler(fsys fs.FS) (*handler, error) {
	h := &handler{files: map[string]*file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		h.files[p] = &file{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.index = h.files["index.html"]
	return h, nil
}

// Handler returns the handler of the embedded console, to be mounted at
// Prefix. It serves GET and HEAD only; a path under Prefix with no file
// extension that names no file gets index.html (the console routes in the
// browser); a missing file with an extension is a 404.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	h, err := newHandler(sub)
	if err != nil {
		panic(err) // embedded files always read
	}
	return h
}

// setSecurityHeaders sets the headers every console response carries.
func setSecurityHeaders(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	for k, v := range securityHeaders {
		hdr.Set(k, v)
	}
	if r.TLS != nil {
		hdr.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w, r)
	hdr := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rel, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	f := h.files[rel]
	switch {
	case f != nil && strings.HasPrefix(rel, "assets/"):
		// Built asset names carry a hash of their content.
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	case f == nil && (rel == "" || !strings.Contains(path.Base(rel), ".")) && h.index != nil:
		f = h.index
		fallthrough
	case f != nil:
		hdr.Set("Cache-Control", "no-cache")
	default:
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// WithConsole serves the console under Prefix, redirects "/" to it, and
// sends every other request to api. Every response carries the security
// headers: the console's, the mux's redirects, and the API's (a 404 of a
// path a browser was led to, say, is a document of this origin too). The
// API's answers hold personal data: they are also marked Cache-Control:
// no-store, unless a handler says otherwise.
func WithConsole(api http.Handler) http.Handler {
	return withConsole(api, Handler())
}

func withConsole(api, ui http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle(Prefix, ui)
	mux.Handle("GET /{$}", http.RedirectHandler(Prefix, http.StatusFound))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w, r)
		if !strings.HasPrefix(r.URL.Path, Prefix) && r.URL.Path != "/" {
			w.Header().Set("Cache-Control", "no-store")
		}
		mux.ServeHTTP(w, r)
	})
}
