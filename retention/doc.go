// Package retention owns what may be kept and for how long: per-tenant
// retention rules and the class they give each span, legal holds, erasure
// requests, and the sweeper that expires payloads. It erases by
// crypto-shredding (ledger.Shred) and records every change, hold, erasure
// and expiry as a ledger entry, so that the log still verifies and says
// what was done, when, by whom and why. Erasure and holds by subject or
// session cover the subject's (session's) whole traces, and an erasure
// closes the traces it erases so that no later piece of them is stored
// (closure.go). docs/RETENTION.md states the semantics and their limits.
package retention
