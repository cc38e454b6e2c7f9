// Package bundle defines Veritrace's evidence bundle format and verifies
// bundles offline. It imports neither Badger nor any server code: an
// auditor's verifier needs only the bundle and the log's public key.
// docs/BUNDLE.md specifies the format.
package bundle
