// Package rpc is Veritrace's Connect RPC layer: it validates requests,
// turns them into ledger calls, and maps ledger errors to Connect codes.
// It is the only package that imports the generated code together with the
// ledger. Every handler is safe for concurrent use.
package rpc
