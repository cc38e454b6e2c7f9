// Package otlp is Veritrace's OpenTelemetry ingest: it reads OTLP export
// requests (protobuf, and OTLP JSON with its hex ids; gzip inflated only up
// to a limit), maps OTLP spans and log records to veritrace.v1.Span, and
// serves the OTLP/HTTP and OTLP gRPC transports over a Backend that admits
// and appends (the rpc package's, which shares the Connect API's keys,
// rules and append path). docs/OTLP.md specifies the behaviour.
//
// Guarantees:
//   - The mapping (MapSpan, MapLogRecord) is pure and deterministic: the
//     same OTLP item under the same resource and scope yields the same
//     span and the same source bytes, so an exporter's retry is a
//     duplicate in the ledger.
//   - Every mapped span carries its source, the item as received with its
//     resource and scope (OtlpSource), deterministically encoded.
//   - Decoding never reads more than the limit after decompression, never
//     returns ids other than those sent (a hex id is decoded as hex or
//     refused), and reports bad input as *BadDataError, never a panic.
//   - Handlers answer bad data with 400 (never a 5xx), over-limit bodies
//     with 413, other media types with 415, overload with 429 or 503 and
//     Retry-After (gRPC: UNAVAILABLE).
package otlp
