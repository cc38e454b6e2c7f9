// The check "OTLP sources" of a bundle (docs/BUNDLE.md), as the Go
// verifier makes it (audit/bundle/otlpsource.go, checkOTLPSource and
// crossCheckOTLP): a span entry ingested over OpenTelemetry holds its
// item's bytes and the SHA-256 of its resource and scope, which a resource
// entry of the same trace holds. Read at the protobuf wire level: no OTLP
// schema is needed.

import { concat, equal, sha256, toHex, utf8 } from "./bytes";

/** A field of a protobuf message: number, wire type, and the bytes inside a length-delimited one. */
interface WireField {
  num: number;
  type: number;
  value?: Uint8Array;
}

const MAX_GROUP_DEPTH = 100;

function varint(b: Uint8Array, at: number): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (at + i >= b.length) throw new Error("unexpected end of input");
    const c = b[at + i];
    if (i === 9 && c > 1) throw new Error("variable length integer overflow");
    v |= BigInt(c & 0x7f) << BigInt(7 * i);
    if (c < 0x80) return [v, i + 1];
  }
  throw new Error("variable length integer overflow");
}

/**
 * The fields of protobuf message b, as Go's protowire reads them: groups
 * (never used by OTLP) skipped whole, nested at most 100 deep. Throws on a
 * malformed field.
 */
function wireFields(b: Uint8Array, from = 0, group = 0, depth = 0, out: WireField[] = []): [WireField[], number] {
  let at = from;
  while (at < b.length) {
    const [tag, n] = varint(b, at);
    const num = Number(tag >> 3n);
    const type = Number(tag & 7n);
    if (tag >> 3n > 0x1fffffffn || num < 1) throw new Error("invalid field number");
    at += n;
    switch (type) {
      case 0:
        at += varint(b, at)[1];
        break;
      case 1:
        if (at + 8 > b.length) throw new Error("unexpected end of input");
        at += 8;
        break;
      case 5:
        if (at + 4 > b.length) throw new Error("unexpected end of input");
        at += 4;
        break;
      case 2: {
        const [len, m] = varint(b, at);
        at += m;
        if (len > BigInt(b.length - at)) throw new Error("unexpected end of input");
        out.push({ num, type, value: b.subarray(at, at + Number(len)) });
        at += Number(len);
        continue;
      }
      case 3: {
        if (depth >= MAX_GROUP_DEPTH) throw new Error("groups nested too deep");
        at = wireFields(b, at, num, depth + 1, [])[1];
        continue;
      }
      case 4:
        if (num !== group || group === 0) throw new Error("unmatched end of group");
        return [out, at];
      default:
        throw new Error(`field ${num}: unknown wire type ${type}`);
    }
    out.push({ num, type });
  }
  if (group !== 0) throw new Error("group not ended");
  return [out, at];
}

/** The last value of each of nums, a length-delimited field of message b. */
function bytesFields(b: Uint8Array, ...nums: number[]): Uint8Array[] {
  const out: Uint8Array[] = nums.map(() => new Uint8Array(0));
  for (const f of wireFields(b)[0]) {
    const i = nums.indexOf(f.num);
    if (i < 0) continue;
    if (f.type !== 2) throw new Error(`field ${f.num} is not length-delimited`);
    out[i] = f.value ?? new Uint8Array(0);
  }
  return out;
}

function resourceScopeShape(b: Uint8Array): string {
  let scopes: WireField[];
  try {
    scopes = wireFields(b)[0].filter((f) => f.num === 2);
    if (scopes.some((f) => f.type !== 2)) throw new Error("its scope is not length-delimited");
  } catch (e) {
    return `resource_scope does not parse: ${String(e instanceof Error ? e.message : e)}`;
  }
  if (scopes.length !== 1) return `resource_scope holds ${scopes.length} scopes; it must hold exactly one scope and no items`;
  try {
    if (wireFields(scopes[0].value ?? new Uint8Array(0))[0].some((f) => f.num === 2)) {
      return "resource_scope's scope holds items; it must hold exactly one scope and no items";
    }
  } catch (e) {
    return `resource_scope's scope does not parse: ${String(e instanceof Error ? e.message : e)}`;
  }
  return "";
}

async function derivedSpanId(domain: string, ...parts: Uint8Array[]): Promise<Uint8Array> {
  const id = (await sha256(utf8.encode(domain), new Uint8Array([0]), ...parts)).slice(0, 8);
  if (id.every((x) => x === 0)) id[7] = 1;
  return id;
}

/** The span id of a trace's resource entry holding the content of this digest. */
export function resourceEntrySpanId(traceId: Uint8Array, digest: Uint8Array): Promise<Uint8Array> {
  return derivedSpanId("veritrace/otlp/resource/v2", traceId, digest);
}

/** The span id of an OTLP log record's entry. */
export function logEntrySpanId(digest: Uint8Array, logRecord: Uint8Array): Promise<Uint8Array> {
  return derivedSpanId("veritrace/otlp/log/v2", digest, logRecord);
}

/** The header fields the check reads. */
export interface SpanHeader {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId: Uint8Array;
  subKind: number;
}

/** A span payload's OTLP source, as the generated message holds it. */
export interface OtlpSource {
  resourceSpans?: Uint8Array;
  resourceLogs?: Uint8Array;
  span?: Uint8Array;
  logRecord?: Uint8Array;
  resourceScopeSha256?: Uint8Array;
  resourceScope?: Uint8Array;
}

/** What the check across entries needs of an entry whose source passed. */
export interface OtlpFacts {
  passed: boolean;
  ref?: Uint8Array; // the resource entry an item refers to
  resource?: Uint8Array; // the SHA-256 of what a resource entry holds
}

const SPAN_KIND_OTHER = 8;

/** Checks a span entry's OTLP source against its header; "" when nothing is wrong. */
export async function checkOtlpSource(h: SpanHeader, src: OtlpSource | undefined, facts: OtlpFacts): Promise<string> {
  const len = (x?: Uint8Array) => x?.length ?? 0;
  const set = [src?.resourceSpans, src?.resourceLogs, src?.span, src?.logRecord, src?.resourceScopeSha256, src?.resourceScope].filter((x) => len(x) > 0).length;
  if (!src || set === 0) return "";
  if (set === 1 && (len(src.resourceSpans) > 0 || len(src.resourceLogs) > 0)) {
    facts.passed = true;
    return "";
  }
  if (set === 1 && len(src.resourceScope) > 0) {
    const b = src.resourceScope as Uint8Array;
    const sum = await sha256(b);
    const shape = resourceScopeShape(b);
    if (shape) return shape;
    const want = await resourceEntrySpanId(h.traceId, sum);
    if (!equal(h.spanId, want) || h.parentSpanId.some((x) => x !== 0) || h.subKind !== SPAN_KIND_OTHER) {
      return `a resource entry must be a root of kind OTHER with span id ${toHex(want)} (derived from its trace and content)`;
    }
    facts.passed = true;
    facts.resource = sum;
    return "";
  }
  const isSpan = set === 2 && len(src.span) > 0 && len(src.resourceScopeSha256) > 0;
  const isLog = set === 2 && len(src.logRecord) > 0 && len(src.resourceScopeSha256) > 0;
  if (!isSpan && !isLog) return "its OTLP source sets fields of more than one form";
  const ref = src.resourceScopeSha256 as Uint8Array;
  if (ref.length !== 32) return `resource_scope_sha256 is ${ref.length} bytes, not 32`;
  if (isSpan) {
    let ids: Uint8Array[];
    try {
      ids = bytesFields(src.span as Uint8Array, 1, 2, 4);
    } catch (e) {
      return `the OTLP span does not parse: ${String(e instanceof Error ? e.message : e)}`;
    }
    const parent = ids[2].length === 0 ? new Uint8Array(8) : ids[2];
    if (!equal(ids[0], h.traceId) || !equal(ids[1], h.spanId) || (ids[2].length !== 0 && ids[2].length !== 8) || !equal(parent, h.parentSpanId)) {
      return `the OTLP span's ids ${toHex(ids[0])}, ${toHex(ids[1])}, ${toHex(ids[2])} are not the header's`;
    }
  } else {
    let ids: Uint8Array[];
    try {
      ids = bytesFields(src.logRecord as Uint8Array, 9, 10);
    } catch (e) {
      return `the OTLP log record does not parse: ${String(e instanceof Error ? e.message : e)}`;
    }
    if (!equal(ids[0], h.traceId) || !equal(ids[1], h.parentSpanId)) {
      return `the OTLP log record's trace and span ids ${toHex(ids[0])}, ${toHex(ids[1])} are not the header's trace and parent span ids`;
    }
    const want = await logEntrySpanId(ref, src.logRecord as Uint8Array);
    if (!equal(h.spanId, want)) return `a log record's span id must be ${toHex(want)} (derived from its content), not ${toHex(h.spanId)}`;
  }
  facts.passed = true;
  facts.ref = ref;
  return "";
}

/** An entry as the check across entries sees it. */
export interface OtlpEntry {
  index: bigint;
  header: SpanHeader;
  erased: boolean;
  facts: OtlpFacts;
}

/** Every OTLP item's resource entry is in the bundle, holding what the item's digest names, or erased. */
export async function crossCheckOtlp(entries: OtlpEntry[], pass: () => void, fail: (msg: string) => void): Promise<void> {
  const byId = new Map<string, OtlpEntry>();
  for (const e of entries) byId.set(toHex(concat(e.header.traceId, e.header.spanId)), e);
  for (const e of entries) {
    if (!e.facts.passed) continue;
    const ref = e.facts.ref;
    if (!ref) {
      pass();
      continue;
    }
    const res = byId.get(toHex(concat(e.header.traceId, await resourceEntrySpanId(e.header.traceId, ref))));
    if (!res) fail(`entry ${e.index} refers to the resource entry of its trace holding ${toHex(ref.slice(0, 8))}, which the bundle does not hold`);
    else if (res.erased) pass();
    else if (!res.facts.resource || !equal(res.facts.resource, ref)) fail(`entry ${e.index} refers to resource entry ${res.index} for content ${toHex(ref.slice(0, 8))}, which holds other content`);
    else pass();
  }
}
