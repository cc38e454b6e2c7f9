// Package audit owns evidence: decision-path queries over the ledger and
// the export of signed evidence bundles. The bundle format and the offline
// verifier live in audit/bundle, which imports neither Badger nor the
// server, so that an auditor's tool stays small.
package audit
