// Package console serves the Veritrace web console: a single-page
// application for auditors, compliance officers and admins, built from the
// TypeScript sources in web/ into dist/ (committed) and embedded in the
// binary, so that `veritrace serve` needs no node and no network at run
// time.
//
// The console is a client like any other: it signs in with an API key kept
// in the tab's session storage and calls the ordinary RPCs, with the same
// permissions and the same access log. This package only serves static
// files under /ui/, each with a strict Content-Security-Policy and the
// other security headers (see Handler), and sends every other path to the
// API.
package console
