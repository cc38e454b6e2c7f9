// Package otlp is Veritrace's OpenTelemetry ingest: it reads OTLP export
// requests item by item (protobuf, and OTLP JSON with its hex ids; gzip
// inflated only up to a limit), maps OTLP spans and log records to
// veritrace.v1.Span, renders OTLP sources as OTLP JSON, and serves the
// OTLP/HTTP and OTLP gRPC transports over a Backend that admits and
// appends (the rpc package's, which shares the Connect API's keys, rules
// and append path). docs/OTLP.md specifies the behaviour; the source
// format is audit/bundle's (otlpsource.go), which the verifier checks.
//
// Guarantees:
//   - Decode fails only when a request is not OTLP at all; a span or log
//     record that does not decode, or whose resource or scope does not, is
//     marked (Item.Err, Group.Err) so that it costs only itself. Strings
//     that are not valid UTF-8, and lone UTF-16 surrogates in JSON, are
//     read as U+FFFD and marked (Item.Fixed). It never returns ids other
//     than those sent (a hex id is decoded as hex or refused).
//   - The mapping (MapSpan, MapLogRecord, ResourceEntry) is pure and
//     deterministic: the same item under the same resource and scope
//     yields the same span and the same source bytes, so an exporter's
//     retry is a duplicate in the ledger.
//   - Every mapped item carries its source: its own bytes as received and
//     the digest of its resource and scope, which ResourceEntry holds once
//     per trace.
//   - SourceJSON never fails on a source that decodes: deep values are
//     elided, not refused.
//   - Handlers answer bad data with 400 (never a 5xx), over-limit bodies
//     and exports with 413, other media types with 415, other methods with
//     405, every error with a google.rpc.Status body, overload with 429 or
//     503 and Retry-After (gRPC: UNAVAILABLE); a handler panic costs its
//     request only.
package otlp
