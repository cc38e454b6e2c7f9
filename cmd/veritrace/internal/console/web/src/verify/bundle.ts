// Offline verification of an evidence bundle (docs/BUNDLE.md) in the
// browser: the same checks, names, order and counts as the Go verifier
// (audit/bundle/verify.go; web/testdata/bundles.json holds its verdicts),
// against a verifier key the auditor supplies. Nothing here talks to a
// server.

import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { SpanSchema, StatusCode } from "../gen/veritrace/v1/span_pb";
import { VersionSchema } from "../gen/veritrace/v1/version_pb";
import { AccessRecordSchema } from "../gen/veritrace/v1/access_pb";
import { equal, fromBase64, fromHex, sha256, toHex, utf8Decoder } from "./bytes";
import { EntryKinds, KIND_ACCESS, KIND_SPAN, KIND_TOMBSTONE, KIND_VERSION, isZero, parseHeader, commitment, validName, versionId, type Header } from "./header";
import { compact, rawMember } from "./json";
import { protoJSON } from "./protojson";
import { arrayOf, checkMembers, objectOf, parseStrict, parseTime, stringOf, uintOf, type JObject, type JValue } from "./strictjson";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle";
import { NoteError, openCheckpoint, openNote, parseDigestBody, type Checkpoint, type VerifierKey } from "./note";
import { checkOtlpSource, crossCheckOtlp, type OtlpFacts, type OtlpSource } from "./otlp";
import { listZip, readZipFile, type ZipFile } from "./zip";

export const Checks = {
  signature: "bundle signature",
  manifest: "manifest",
  files: "file digests",
  checkpoint: "checkpoint signature",
  headers: "entry headers",
  commitments: "payload commitments",
  leafHashes: "leaf hashes",
  inclusion: "inclusion proofs",
  decoded: "decoded content",
  identity: "header matches payload",
  references: "version references",
  erasures: "erasures",
  traces: "traces",
  otlp: "OTLP sources",
  selector: "selector",
  timeRange: "time range",
  pinned: "pinned checkpoint",
  consistency: "consistency proof",
} as const;

const MAX_FAILURES = 20;
const FORMAT = "veritrace-bundle/v3";
const FORMAT_V2 = "veritrace-bundle/v2";
const FORMAT_V1 = "veritrace-bundle/v1";
const MANIFEST = "manifest.json";
const SIGNATURE = "manifest.sig";
const CHECKPOINT = "checkpoint.txt";
const CONSISTENCY = "consistency.json";
const REPORT = "report.html";
const RANGE = "range.bin";
const MAX_RANGE_HEADERS = 10_000_000;
// The format's limits on each file's size (docs/BUNDLE.md, the Go
// verifier's Max*Bytes), checked from the directory before reading.
const MAX_MANIFEST_BYTES = 512 << 20;
const MAX_ENTRY_FILE_BYTES = 32 << 20;
const MAX_REPORT_BYTES = 256 << 20;
const MAX_SMALL_FILE_BYTES = 64 << 10;
const MAX_RANGE_FILE_BYTES = MAX_RANGE_HEADERS * 310;
// All files together, uncompressed.
const MAX_BUNDLE_BYTES = 32 * 2 ** 30;

/** The most bytes the named file of a bundle may hold. */
function maxBytes(name: string): number {
  switch (name) {
    case MANIFEST:
      return MAX_MANIFEST_BYTES;
    case SIGNATURE:
    case CHECKPOINT:
    case CONSISTENCY:
      return MAX_SMALL_FILE_BYTES;
    case REPORT:
      return MAX_REPORT_BYTES;
    case RANGE:
      return MAX_RANGE_FILE_BYTES;
    default:
      return MAX_ENTRY_FILE_BYTES;
  }
}
// An entry file or range.bin expands at most 8 times its compressed size
// plus 1024 bytes (they are deflated Huffman-only); checked before reading.
const MAX_EXPANSION = 8;
const EXPANSION_SLACK = 1024;
const MAX_HEADER_BYTES = 213 + 63 + 32;
const MAX_ENTRIES = 1_000_000;
const MAX_INCLUSION_HASHES = 64;
const MAX_CONSISTENCY_HASHES = 128;
const MAX_VALUE_DEPTH = 32;
const MAX_NESTING = 128;

export interface Check {
  name: string;
  passed: number;
  failed: number;
  failures: string[]; // at most 20
  notes: string[]; // facts that do not fail the check, at most 20
  skipped: string; // why the check did not run, if it did not
}

export function checkOK(c: Check): boolean {
  return c.failed === 0 && c.skipped === "";
}

export interface Report {
  format: string;
  origin: string;
  treeSize: bigint;
  entries: number;
  traces: number;
  checks: Check[];
  /** The manifest, when it parsed: what the bundle says it holds. */
  manifest?: Manifest;
}

export function reportOK(r: Report): boolean {
  return r.checks.every(checkOK);
}

export interface Manifest {
  format: string;
  origin: string;
  tenant: string;
  log_key: string;
  created_at: string;
  selector: Record<string, unknown>;
  tree_size: number;
  traces: string[];
  entries: { index: number; kind: string; file: string }[];
  consistency?: { old_size: number; file: string } | null;
  /** Format 3, a time-range export: its range and the proof of range.bin's last header. */
  range?: { first: number; end: number; file: string; proof: Uint8Array[] };
  files: { name: string; sha256: string }[];
  /** The selector's from and to, in nanoseconds since the epoch. */
  from?: bigint;
  to?: bigint;
}

class Verifier {
  report: Report = { format: "", origin: "", treeSize: 0n, entries: 0, traces: 0, checks: [] };
  private byName = new Map<string, Check>();

  check(name: string): Check {
    let c = this.byName.get(name);
    if (!c) {
      c = { name, passed: 0, failed: 0, failures: [], notes: [], skipped: "" };
      this.byName.set(name, c);
      this.report.checks.push(c);
    }
    return c;
  }
  pass(name: string) {
    this.check(name).passed++;
  }
  fail(name: string, msg: string) {
    const c = this.check(name);
    c.failed++;
    if (c.failures.length < MAX_FAILURES) c.failures.push(msg);
  }
  note(name: string, msg: string) {
    const c = this.check(name);
    if (c.notes.length < MAX_FAILURES) c.notes.push(msg);
  }
  skip(name: string, why: string) {
    const c = this.check(name);
    if (c.skipped === "") c.skipped = why;
  }
  skipAll(why: string) {
    for (const c of this.report.checks) if (c.passed === 0 && c.failed === 0) c.skipped = why;
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isString(v: unknown): v is string {
  return typeof v === "string";
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);

const SELECTOR_V1 = ["trace_id", "session_id", "subject_id", "from", "to"];
const SELECTOR = [...SELECTOR_V1, "version_id", "kind", "model", "errors_only"];
const PAYLOAD_CONDITIONS = ["session_id", "subject_id", "model", "errors_only"];

/** Parses the selector: a member present is a condition (a string is never empty, errors_only is true). */
function parseSelector(o: JObject): { sel: Record<string, unknown>; from?: bigint; to?: bigint } {
  checkMembers(o, SELECTOR, [], "selector");
  const sel: Record<string, unknown> = {};
  let from: bigint | undefined;
  let to: bigint | undefined;
  for (const [k, v] of o) {
    if (k === "errors_only") {
      if (v !== true) throw new Error("selector: errors_only: want true");
      sel[k] = true;
      continue;
    }
    const s = stringOf(v, `selector: ${k}`);
    if (s === "") throw new Error(`selector: ${k}: empty; a condition not given is absent`);
    if (k === "from") from = parseTime(s);
    if (k === "to") to = parseTime(s);
    sel[k] = s;
  }
  return { sel, from, to };
}

/** True when a format 3 bundle of the selector carries a range: from or to, and no payload condition. */
function isTimeRange(sel: Record<string, unknown>): boolean {
  return ("from" in sel || "to" in sel) && !PAYLOAD_CONDITIONS.some((k) => k in sel);
}

function hashesOf(v: JValue | undefined, max: number, what: string): Uint8Array[] {
  const a = arrayOf(v, what);
  if (a.length > max + 1) throw new Error(`${what}: too many hashes`);
  return a.map((p, i) => jsonHash(p, `${what}[${i}]`));
}

/** Parses manifest.json strictly: the members of docs/BUNDLE.md, each of its type, every one but consistency and range present. */
function parseManifest(text: string): Manifest {
  const m = objectOf(parseStrict(text), "manifest");
  checkMembers(m, ["format", "origin", "tenant", "log_key", "created_at", "selector", "tree_size", "traces", "entries", "consistency", "range", "files"],
    ["format", "origin", "tenant", "log_key", "created_at", "selector", "tree_size", "traces", "entries", "files"], "manifest");
  const createdAt = stringOf(m.get("created_at"), "created_at");
  parseTime(createdAt);
  const { sel, from, to } = parseSelector(objectOf(m.get("selector"), "selector"));
  const traces = arrayOf(m.get("traces"), "traces");
  if (traces.length > MAX_ENTRIES) throw new Error(`traces: more than ${MAX_ENTRIES}`);
  const entries = arrayOf(m.get("entries"), "entries");
  if (entries.length > MAX_ENTRIES) throw new Error(`entries: more than ${MAX_ENTRIES}`);
  const files = arrayOf(m.get("files"), "files");
  if (files.length > MAX_ENTRIES + 4) throw new Error(`files: more than ${MAX_ENTRIES + 4}`);
  const out: Manifest = {
    format: stringOf(m.get("format"), "format"), origin: stringOf(m.get("origin"), "origin"), tenant: stringOf(m.get("tenant"), "tenant"),
    log_key: stringOf(m.get("log_key"), "log_key"), created_at: createdAt, selector: sel, from, to,
    tree_size: uintOf(m.get("tree_size"), "tree_size"),
    traces: traces.map((t, i) => stringOf(t, `traces[${i}]`)),
    entries: entries.map((x, i) => {
      const e = objectOf(x, `entries[${i}]`);
      checkMembers(e, ["index", "kind", "file"], ["index", "kind", "file"], `entries[${i}]`);
      return { index: uintOf(e.get("index"), `entries[${i}].index`), kind: stringOf(e.get("kind"), `entries[${i}].kind`), file: stringOf(e.get("file"), `entries[${i}].file`) };
    }),
    files: files.map((x, i) => {
      const f = objectOf(x, `files[${i}]`);
      checkMembers(f, ["name", "sha256"], ["name", "sha256"], `files[${i}]`);
      return { name: stringOf(f.get("name"), `files[${i}].name`), sha256: stringOf(f.get("sha256"), `files[${i}].sha256`) };
    }),
  };
  if (m.has("consistency")) {
    const c = objectOf(m.get("consistency"), "consistency");
    checkMembers(c, ["old_size", "file"], ["old_size", "file"], "consistency");
    out.consistency = { old_size: uintOf(c.get("old_size"), "consistency.old_size"), file: stringOf(c.get("file"), "consistency.file") };
  }
  if (m.has("range")) {
    const r = objectOf(m.get("range"), "range");
    checkMembers(r, ["first", "end", "file", "proof"], ["first", "end", "file", "proof"], "range");
    out.range = { first: uintOf(r.get("first"), "range.first"), end: uintOf(r.get("end"), "range.end"), file: stringOf(r.get("file"), "range.file"),
      proof: hashesOf(r.get("proof"), MAX_INCLUSION_HASHES, "range.proof") };
  }
  return out;
}

const isHex = (s: unknown, n: number): boolean => isString(s) && s.length === 2 * n && /^[0-9a-f]*$/.test(s);
const SPAN_KINDS = ["generation", "embedding", "retrieval", "tool", "agent", "chain", "guardrail", "other"];

/** The manifest's structure (check 2 of docs/BUNDLE.md); returns why it is not valid, or "". */
function manifestProblem(m: Manifest, key: VerifierKey): string {
  if (m.format !== FORMAT && m.format !== FORMAT_V2 && m.format !== FORMAT_V1) return `format ${JSON.stringify(m.format)}, want ${JSON.stringify(FORMAT)}, ${JSON.stringify(FORMAT_V2)} or ${JSON.stringify(FORMAT_V1)}`;
  const prefix = key.name + "/";
  if (!m.origin.startsWith(prefix) || m.tenant !== m.origin.slice(prefix.length) || !validName(m.tenant, 63)) {
    return `origin ${JSON.stringify(m.origin)} and tenant ${JSON.stringify(m.tenant)}: the origin must be ${key.name}/<tenant>`;
  }
  if (m.tree_size === 0) return "tree size 0";
  const s = m.selector;
  if (m.format === FORMAT_V1 && Object.keys(s).some((k) => !SELECTOR_V1.includes(k))) return `selector: version_id, kind, model and errors_only are not part of ${FORMAT_V1}`;
  if (s.trace_id !== undefined && !isHex(s.trace_id, 16)) return "selector: trace_id is not 32 lowercase hex digits";
  if (s.version_id !== undefined && !isHex(s.version_id, 32)) return "selector: version_id is not 64 lowercase hex digits";
  if (s.kind !== undefined && !SPAN_KINDS.includes(s.kind as string)) return "selector: kind is not a span kind";
  if (m.from !== undefined && m.to !== undefined && m.from >= m.to) return "selector: from is not before to";
  if (Object.keys(s).length === 0) return "selector: it names no condition; an export names at least one";
  if (m.entries.length === 0 || m.entries.length > MAX_ENTRIES) return `${m.entries.length} entries; a bundle holds 1 to ${MAX_ENTRIES}`;
  if (m.traces.length === 0 || m.traces.length > MAX_ENTRIES) return `${m.traces.length} traces; a bundle holds 1 to ${MAX_ENTRIES}`;
  const traces = new Set<string>();
  for (const t of m.traces) {
    if (!isHex(t, 16) || /^0*$/.test(t)) return `trace id ${JSON.stringify(t)} is not 32 lowercase hex digits`;
    if (traces.has(t)) return `trace ${t} is listed twice`;
    traces.add(t);
  }
  const want = new Set<string>([CHECKPOINT, REPORT]);
  const seen = new Set<number>();
  for (const e of m.entries) {
    if (seen.has(e.index)) return `entry ${e.index} is listed twice`;
    if (e.index >= m.tree_size) return `entry ${e.index} is beyond the tree size ${m.tree_size}`;
    if (e.file !== entryFile(e.index)) return `entry ${e.index}: file ${JSON.stringify(e.file)}, want ${JSON.stringify(entryFile(e.index))}`;
    if (e.kind !== "span" && e.kind !== "version" && e.kind !== "tombstone") return `entry ${e.index}: kind ${JSON.stringify(e.kind)}; a bundle holds span, version and tombstone entries`;
    seen.add(e.index);
    want.add(e.file);
  }
  if (m.consistency) {
    const c = m.consistency;
    if (c.file !== CONSISTENCY || c.old_size === 0 || c.old_size > m.tree_size) return `consistency: file ${JSON.stringify(c.file)} from size ${c.old_size}`;
    want.add(CONSISTENCY);
  }
  if (m.range) {
    const r = m.range;
    if (m.format !== FORMAT) return `range: not part of ${m.format}`;
    if (!isTimeRange(s)) return "range: the selector is not a time range whose other conditions lie in the headers";
    if (r.file !== RANGE || r.first >= r.end || r.end > m.tree_size) return `range: file ${JSON.stringify(r.file)} of entries [${r.first}, ${r.end})`;
    if (r.proof.length > MAX_INCLUSION_HASHES) return `range: an inclusion proof of ${r.proof.length} hashes`;
    want.add(RANGE);
  }
  const names = new Set<string>();
  for (const f of m.files) {
    if (names.has(f.name)) return `file ${JSON.stringify(f.name)} is listed twice`;
    if (!want.has(f.name)) return `file ${JSON.stringify(f.name)} is listed but is not an entry file, ${CHECKPOINT}, ${REPORT}, ${CONSISTENCY} or ${RANGE}`;
    if (!isHex(f.sha256, 32)) return `file ${JSON.stringify(f.name)}: SHA-256 is not 64 lowercase hex digits`;
    names.add(f.name);
  }
  for (const n of want) if (!names.has(n)) return `file ${JSON.stringify(n)} is not listed`;
  return "";
}

function entryFile(index: number): string {
  return `entries/${String(index).padStart(20, "0")}.json`;
}

/** An entry file (docs/BUNDLE.md), decoded strictly. */
interface EntryFile {
  index: number;
  header: Uint8Array;
  leafHash: Uint8Array;
  payload?: Uint8Array;
  salt?: Uint8Array;
  erased: boolean;
  inclusionProof: Uint8Array[];
  decodedRaw?: string;
  undecodable?: string;
}

/** base64 in its canonical spelling (no line breaks, zero padding bits), as the Go verifier reads it. */
function jsonBytes(v: JValue | undefined, what: string): Uint8Array {
  return fromBase64(stringOf(v, what));
}

function jsonHash(v: JValue | undefined, what: string): Uint8Array {
  const b = fromHex(stringOf(v, what));
  if (b.length !== 32) throw new Error(`${what}: want 32 bytes of hex`);
  return b;
}

/** Parses an entry file strictly (docs/BUNDLE.md): index, header, leaf_hash and inclusion_proof present; erased only as true. */
export function parseEntry(text: string): EntryFile {
  const e = objectOf(parseStrict(text), "entry file");
  checkMembers(e, ["index", "header", "leaf_hash", "payload", "salt", "erased", "inclusion_proof", "decoded", "undecodable"],
    ["index", "header", "leaf_hash", "inclusion_proof"], "entry file");
  if (e.has("erased") && e.get("erased") !== true) throw new Error("erased: want true");
  return {
    index: uintOf(e.get("index"), "index"),
    header: jsonBytes(e.get("header"), "header"),
    leafHash: jsonHash(e.get("leaf_hash"), "leaf_hash"),
    payload: e.has("payload") ? jsonBytes(e.get("payload"), "payload") : undefined,
    salt: e.has("salt") ? jsonBytes(e.get("salt"), "salt") : undefined,
    erased: e.has("erased"),
    inclusionProof: hashesOf(e.get("inclusion_proof"), MAX_INCLUSION_HASHES, "inclusion_proof"),
    decodedRaw: e.has("decoded") ? rawMember(text, "decoded") : undefined,
    undecodable: e.has("undecodable") ? stringOf(e.get("undecodable"), "undecodable") : undefined,
  };
}

/**
 * Reads what the verifier needs of a tombstone's payload (docs/FORMAT.md
 * §2.2, docs/BUNDLE.md check 10): reason (a string) and erased (an array,
 * or null for none, of objects with an integer index and a string
 * leaf_hash), by their exact names; other members are ignored once parsed.
 */
function parseTombstone(payload: Uint8Array): { reason: string; erased: { index: number; leaf_hash: string }[] } {
  const t = objectOf(parseStrict(utf8Decoder.decode(payload)), "tombstone");
  if (!t.has("reason") || !t.has("erased")) throw new Error("tombstone: reason or erased is missing");
  const reason = stringOf(t.get("reason"), "reason");
  const erasedV = t.get("erased");
  const erased = erasedV === null ? [] : arrayOf(erasedV, "erased").map((x, i) => {
    const o = objectOf(x, `erased[${i}]`);
    if (!o.has("index") || !o.has("leaf_hash")) throw new Error(`erased[${i}]: index or leaf_hash is missing`);
    return { index: uintOf(o.get("index"), `erased[${i}].index`), leaf_hash: stringOf(o.get("leaf_hash"), `erased[${i}].leaf_hash`) };
  });
  return { reason, erased };
}

/**
 * Why a decoded protobuf message has no lossless proto JSON form
 * (docs/FORMAT.md §2.6), or "" when it has one: unknown fields, a
 * google.protobuf.Value with no kind, not finite or nested too deep, a
 * Timestamp out of range.
 */
function decodableProblem(v: unknown, valueDepth = 0, depth = 0): string {
  if (typeof v !== "object" || v === null || v instanceof Uint8Array) return "";
  if (depth > MAX_NESTING) return "nested too deep";
  if (Array.isArray(v)) {
    for (const x of v) {
      const p = decodableProblem(x, valueDepth, depth);
      if (p) return p;
    }
    return "";
  }
  const o = v as Obj;
  if (Array.isArray(o.$unknown) && o.$unknown.length > 0) return `unknown field of ${String(o.$typeName)}`;
  switch (o.$typeName) {
    case "google.protobuf.Value": {
      if (valueDepth > MAX_VALUE_DEPTH) return `google.protobuf.Value nested more than ${MAX_VALUE_DEPTH} deep`;
      const k = o.kind as { case?: string; value?: unknown } | undefined;
      if (!k || k.case === undefined) return "google.protobuf.Value has no kind";
      if (k.case === "numberValue" && !Number.isFinite(k.value as number)) return "google.protobuf.Value number_value must be finite";
      return decodableProblem(k.value, valueDepth + 1, depth + 1);
    }
    case "google.protobuf.Timestamp": {
      const sec = BigInt(o.seconds as bigint), nanos = o.nanos as number;
      if (sec < -62135596800n || sec > 253402300799n || nanos < 0 || nanos > 999_999_999) return "google.protobuf.Timestamp out of range";
      return "";
    }
  }
  for (const [k, x] of Object.entries(o)) {
    if (k === "$typeName" || k === "$unknown") continue;
    const p = decodableProblem(x, valueDepth, isObj(x) && "$typeName" in x ? depth + 1 : depth);
    if (p) return p;
  }
  return "";
}

/** The payload message of each protobuf entry kind (docs/FORMAT.md §2.2). */
const PAYLOAD_SCHEMAS: ReadonlyMap<number, DescMessage> = new Map<number, DescMessage>([
  [KIND_SPAN, SpanSchema],
  [KIND_VERSION, VersionSchema],
  [KIND_ACCESS, AccessRecordSchema],
]);

/**
 * A payload of entry kind kind read as docs/FORMAT.md §2.2 says: a span,
 * version or access payload parsed as its message (Span, Version,
 * AccessRecord), with its decoded form (the canonical proto JSON, §2.5)
 * when it is decodable, or why it is not; a tombstone, retention or hold
 * payload's decoded form is its JSON compacted. The Go verifier's is
 * audit/bundle.DecodePayload.
 */
export function decodePayload(kind: number, payload: Uint8Array): { msg?: Obj; problem: string; decoded?: string } {
  const schema = PAYLOAD_SCHEMAS.get(kind);
  if (!schema) {
    if (kind < KIND_TOMBSTONE || kind >= EntryKinds.length) return { problem: `entry kind ${kind} has no payload format` };
    const decoded = compactJSON(payload);
    return decoded === undefined ? { problem: "not UTF-8 JSON" } : { problem: "", decoded };
  }
  let msg: Obj;
  try {
    msg = fromBinary(schema, payload) as unknown as Obj;
  } catch (err) {
    return { problem: `does not parse as ${schema.typeName}: ${errText(err)}` };
  }
  const problem = decodableProblem(msg);
  if (problem) return { msg, problem };
  try {
    return { msg, problem, decoded: protoJSON(schema, msg) };
  } catch (err) {
    return { msg, problem: errText(err) };
  }
}

/**
 * Whether an entry's decoded text is the payload's decoded form want (its
 * compact text: the canonical proto JSON, or a JSON payload compacted), as
 * check 9 of docs/BUNDLE.md requires: the same text once the white space
 * outside strings is removed. Parsing the text and comparing messages would
 * pass texts that ordinary JSON readers read as other values (an int64 as a
 * number past 2^53) or that other proto JSON parsers read otherwise ("2e1"
 * for 20), on which the Go verifier and this one could disagree. Bundles
 * of formats 1 and 2 may also hold want HTML-escaped, as Go's encoding/json
 * wrote entry files before format 3 (<, >, &, U+2028, U+2029 as \u003c,
 * \u003e, \u0026, \u2028, \u2029).
 */
function decodedEqual(format: string, want: string | undefined, raw: string | undefined): boolean {
  if (want === undefined || raw === undefined) return false;
  let got: string;
  try {
    got = compact(raw);
  } catch {
    return false;
  }
  if (got === want) return true;
  return (format === FORMAT_V1 || format === FORMAT_V2) && HTML_ESCAPED.test(want) && got === want.replace(HTML_ESCAPED_ALL, htmlEscape);
}

const HTML_ESCAPED = /[<>&\u2028\u2029]/;
const HTML_ESCAPED_ALL = /[<>&\u2028\u2029]/g;
const htmlEscape = (c: string) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");

/** Standard base64 (with padding) of a JSON payload's text, compacted; undefined when it is not UTF-8 JSON. */
function compactJSON(payload: Uint8Array): string | undefined {
  try {
    const text = utf8Decoder.decode(payload);
    JSON.parse(text);
    return compact(text);
  } catch {
    return undefined;
  }
}

const ENTRY_CHECKS = [Checks.files, Checks.headers, Checks.leafHashes, Checks.commitments, Checks.inclusion, Checks.decoded, Checks.identity];

/** What checking one entry found, and what the checks across entries need of it. */
interface EntryResult {
  passed: Set<string>;
  fails: [string, string][];
  notes: [string, string][];
  header?: Header;
  leaf?: Uint8Array;
  erased: boolean;
  names: { index: number; leaf_hash: string }[];
  /** Of a span whose payload parsed: what it says of the selector's payload conditions. */
  payload: number;
  otlp: OtlpFacts;
}

const PAYLOAD_UNKNOWN = 0; // erased, or not a span: the bundle cannot tell
const PAYLOAD_NO = 1;
const PAYLOAD_YES = 2;

/** A span payload against the selector's payload conditions (session, subject, model, errors only). */
function matchPayload(s: Record<string, unknown>, sp: Obj): boolean {
  const model = (sp.model ?? {}) as Obj;
  const status = (sp.status ?? {}) as Obj;
  return (s.session_id === undefined || sp.sessionId === s.session_id) &&
    (s.subject_id === undefined || sp.subjectId === s.subject_id) &&
    (s.model === undefined || model.requestModel === s.model || model.responseModel === s.model) &&
    (s.errors_only === undefined || status.code === StatusCode.ERROR);
}

/** A span header against the selector's header conditions (trace, time, kind, version). */
function matchHeader(m: Manifest, h: Header): boolean {
  const s = m.selector;
  if (s.trace_id !== undefined && toHex(h.traceId) !== s.trace_id) return false;
  if (m.from !== undefined && h.appendedAtNanos < m.from) return false;
  if (m.to !== undefined && h.appendedAtNanos >= m.to) return false;
  if (s.kind !== undefined && SPAN_KINDS[h.subKind - 1] !== s.kind) return false;
  if (s.version_id !== undefined && !h.refs.some((r) => toHex(r) === s.version_id)) return false;
  return true;
}

/**
 * Verifies a bundle (the zip file's bytes) against the log's verifier key
 * and, when given, a pinned checkpoint (a signed note the auditor already
 * holds). It never throws for bad input: every problem is a failed check.
 */
export async function verifyBundle(zipBytes: Uint8Array, key: VerifierKey, pinned?: string): Promise<Report> {
  const v = new Verifier();
  for (const name of [Checks.signature, Checks.manifest, Checks.files, Checks.checkpoint, Checks.headers, Checks.commitments,
    Checks.leafHashes, Checks.inclusion, Checks.decoded, Checks.identity, Checks.references, Checks.erasures, Checks.traces, Checks.otlp,
    Checks.selector, Checks.timeRange]) {
    v.check(name);
  }
  if (pinned !== undefined) {
    v.check(Checks.pinned);
    v.check(Checks.consistency);
  }
  await run(v, zipBytes, key, pinned);
  return v.report;
}

async function run(v: Verifier, zipBytes: Uint8Array, key: VerifierKey, pinned?: string): Promise<void> {
  let list: ZipFile[];
  try {
    list = listZip(zipBytes);
  } catch (e) {
    v.fail(Checks.manifest, `not a zip file: ${errText(e)}`);
    v.skipAll("the bundle could not be opened");
    return;
  }
  const files = new Map<string, ZipFile>();
  let total = 0;
  for (const f of list) {
    if (files.has(f.name)) {
      v.fail(Checks.files, `${JSON.stringify(f.name)} appears twice`);
      continue;
    }
    files.set(f.name, f);
    total += f.size;
  }
  if (total > MAX_BUNDLE_BYTES) {
    v.fail(Checks.files, `${total} bytes uncompressed, more than the limit of ${MAX_BUNDLE_BYTES}`);
    v.skipAll("the bundle is too large");
    return;
  }
  // bounded: an entry file or range.bin, refused from the directory when it
  // would expand more than a Huffman-only file can.
  const read = async (name: string, bounded = false): Promise<Uint8Array> => {
    const f = files.get(name);
    if (!f) throw new Error(`${name} is missing`);
    if (bounded && f.size > MAX_EXPANSION * f.compressedSize + EXPANSION_SLACK) {
      throw new Error(`${name}: ${f.size} bytes compressed to ${f.compressedSize}, more than an entry file expands (${MAX_EXPANSION} times, plus ${EXPANSION_SLACK} bytes)`);
    }
    return readZipFile(zipBytes, f, maxBytes(name));
  };
  const readText = async (name: string) => utf8Decoder.decode(await read(name));

  // The signature, before anything else is read.
  let sigText: string;
  try {
    sigText = await readText(SIGNATURE);
  } catch (e) {
    v.fail(Checks.signature, errText(e));
    v.skipAll("the manifest's signature could not be read");
    return;
  }
  let body: { origin: string; digest: Uint8Array };
  try {
    body = parseDigestBody((await openNote(sigText, key)).text);
  } catch (e) {
    v.fail(Checks.signature, e instanceof NoteError ? `${SIGNATURE} does not verify with key ${key.name}: ${e.message}` : errText(e));
    v.skipAll("the manifest is not signed by the key");
    return;
  }
  let mb: Uint8Array;
  try {
    mb = await read(MANIFEST);
  } catch (e) {
    v.fail(Checks.signature, errText(e));
    v.skipAll("the manifest could not be read");
    return;
  }
  if (!equal(body.digest, await sha256(mb))) {
    v.fail(Checks.signature, `the signature is for another manifest (signed ${toHex(body.digest.slice(0, 8))})`);
    v.skipAll("the manifest is not signed by the key");
    return;
  }
  let m: Manifest;
  try {
    m = parseManifest(utf8Decoder.decode(mb));
  } catch (e) {
    v.pass(Checks.signature);
    v.fail(Checks.manifest, `manifest.json does not parse: ${errText(e)}`);
    v.skipAll("the manifest could not be read");
    return;
  }
  if (body.origin !== m.origin) {
    v.fail(Checks.signature, `the signature names origin ${JSON.stringify(body.origin)}, the manifest ${JSON.stringify(m.origin)}`);
    v.skipAll("the manifest is not signed for its origin");
    return;
  }
  v.pass(Checks.signature);
  Object.assign(v.report, { format: m.format, origin: m.origin, treeSize: BigInt(m.tree_size), entries: m.entries.length, traces: m.traces.length, manifest: m });
  const problem = manifestProblem(m, key);
  if (problem) {
    v.fail(Checks.manifest, problem);
    v.skipAll("the manifest is not valid");
    return;
  }
  v.pass(Checks.manifest);

  // Every file of the zip must be listed; the listed ones are hashed as they are read.
  const listed = new Map(m.files.map((f) => [f.name, f.sha256]));
  for (const f of list) {
    if (!listed.has(f.name) && f.name !== MANIFEST && f.name !== SIGNATURE) v.fail(Checks.files, `${JSON.stringify(f.name)} is not listed in the manifest`);
  }
  const digest = async (name: string, b: Uint8Array, target: { pass: (c: string) => void; fail: (c: string, m: string) => void } = v) => {
    const sum = toHex(await sha256(b));
    if (sum !== listed.get(name)) target.fail(Checks.files, `${name}: SHA-256 ${sum.slice(0, 16)}, the manifest says ${JSON.stringify((listed.get(name) ?? "").slice(0, 16))}`);
    else target.pass(Checks.files);
  };

  // The checkpoint.
  let cp: Checkpoint | undefined;
  try {
    const b = await read(CHECKPOINT);
    await digest(CHECKPOINT, b);
    try {
      const c = await openCheckpoint(utf8Decoder.decode(b), key);
      if (c.origin !== m.origin || c.size !== BigInt(m.tree_size)) {
        v.fail(Checks.checkpoint, `checkpoint is for ${JSON.stringify(c.origin)} at size ${c.size}, the manifest says ${JSON.stringify(m.origin)} at ${m.tree_size}`);
      } else {
        cp = c;
        v.pass(Checks.checkpoint);
      }
    } catch (e) {
      v.fail(Checks.checkpoint, errText(e));
    }
  } catch (e) {
    v.fail(Checks.files, errText(e));
    v.fail(Checks.checkpoint, errText(e));
  }
  if (!cp) v.skip(Checks.inclusion, "no valid checkpoint to prove against");

  // Every entry, then the checks across entries.
  const results: EntryResult[] = [];
  for (const ref of m.entries) results.push(await checkEntry(m, ref, cp, read, digest));
  for (const r of results) {
    for (const [c, msg] of r.fails) v.fail(c, msg);
    for (const [c, msg] of r.notes) v.note(c, msg);
    for (const c of ENTRY_CHECKS) if (r.passed.has(c)) v.pass(c);
  }
  crossChecks(v, m, results);
  await crossCheckOtlp(
    results.flatMap((r) => (r.header && r.header.kind === KIND_SPAN ? [{ index: r.header.index, header: r.header, erased: r.erased, facts: r.otlp }] : [])),
    () => v.pass(Checks.otlp), (msg) => v.fail(Checks.otlp, msg));
  checkSelectorHolds(v, m, results);
  await checkTimeRange(v, m, cp, results, files, read, listed);

  // The other files.
  try {
    await digest(REPORT, await read(REPORT));
  } catch (e) {
    v.fail(Checks.files, errText(e));
  }
  let cons: { old_size: number; new_size: number; proof: Uint8Array[]; old_checkpoint?: string } | undefined;
  if (m.consistency) {
    try {
      const b = await read(CONSISTENCY);
      await digest(CONSISTENCY, b);
      try {
        const c = objectOf(parseStrict(utf8Decoder.decode(b)), CONSISTENCY);
        checkMembers(c, ["old_size", "new_size", "proof", "old_checkpoint"], ["old_size", "new_size", "proof"], CONSISTENCY);
        cons = {
          old_size: uintOf(c.get("old_size"), "old_size"), new_size: uintOf(c.get("new_size"), "new_size"),
          proof: hashesOf(c.get("proof"), MAX_CONSISTENCY_HASHES, "proof"),
          old_checkpoint: c.has("old_checkpoint") ? stringOf(c.get("old_checkpoint"), "old_checkpoint") : undefined,
        };
      } catch (e) {
        v.fail(Checks.consistency, `${CONSISTENCY} is not a consistency proof: ${errText(e)}`);
      }
    } catch (e) {
      v.fail(Checks.files, errText(e));
    }
  }
  await checkConsistency(v, m, cp, cons, key, pinned);
}

async function checkEntry(m: Manifest, ref: { index: number; kind: string; file: string }, cp: Checkpoint | undefined,
  read: (n: string, bounded: boolean) => Promise<Uint8Array>, digest: (name: string, b: Uint8Array, t: { pass: (c: string) => void; fail: (c: string, m: string) => void }) => Promise<void>): Promise<EntryResult> {
  const r: EntryResult = { passed: new Set(), fails: [], notes: [], erased: false, names: [], payload: PAYLOAD_UNKNOWN, otlp: { passed: false } };
  const fail = (c: string, msg: string) => void r.fails.push([c, msg]);
  let b: Uint8Array;
  try {
    b = await read(ref.file, true);
  } catch (e) {
    fail(Checks.files, errText(e));
    fail(Checks.headers, `entry ${ref.index}: ${errText(e)}`);
    return r;
  }
  await digest(ref.file, b, { pass: (c) => r.passed.add(c), fail });
  let e: EntryFile;
  let h: Header;
  try {
    e = parseEntry(utf8Decoder.decode(b));
  } catch (err) {
    fail(Checks.headers, `entry ${ref.index}: ${ref.file} is not an entry file: ${errText(err)}`);
    return r;
  }
  try {
    h = parseHeader(e.header);
  } catch (err) {
    fail(Checks.headers, `entry ${ref.index}: ${errText(err)}`);
    return r;
  }
  if (h.index !== BigInt(ref.index) || e.index !== ref.index) {
    fail(Checks.headers, `entry ${ref.index}: the header says index ${h.index}, the file ${e.index}`);
    return r;
  }
  if (h.tenant !== m.tenant) {
    fail(Checks.headers, `entry ${ref.index}: the header says tenant ${JSON.stringify(h.tenant)}, the bundle is for ${JSON.stringify(m.tenant)}`);
    return r;
  }
  if (h.kindName !== ref.kind) {
    fail(Checks.headers, `entry ${ref.index}: the header says kind ${h.kindName}, the manifest ${ref.kind}`);
    return r;
  }
  if (e.inclusionProof.length > MAX_INCLUSION_HASHES) {
    fail(Checks.headers, `entry ${ref.index}: an inclusion proof of ${e.inclusionProof.length} hashes`);
    return r;
  }
  r.passed.add(Checks.headers);
  r.header = h;
  const leaf = await leafHash(e.header);
  r.leaf = leaf;
  if (!equal(leaf, e.leafHash)) fail(Checks.leafHashes, `entry ${ref.index}: leaf hash ${toHex(e.leafHash.slice(0, 8))}, the header hashes to ${toHex(leaf.slice(0, 8))}`);
  else r.passed.add(Checks.leafHashes);
  if (cp) {
    try {
      if (h.index >= cp.size) throw new Error("the index is not below the tree size");
      await verifyInclusion(h.index, cp.size, leaf, e.inclusionProof, cp.root);
      r.passed.add(Checks.inclusion);
    } catch (err) {
      fail(Checks.inclusion, `entry ${ref.index} is not proved in the tree of size ${cp.size}: ${errText(err)}`);
    }
  }
  if (e.erased) {
    r.erased = true;
    if (e.payload !== undefined || e.salt !== undefined || e.decodedRaw !== undefined || e.undecodable) {
      fail(Checks.commitments, `entry ${ref.index} is marked erased but carries a payload, salt or decoded content`);
      return r;
    }
    for (const c of [Checks.commitments, Checks.decoded, Checks.identity]) r.passed.add(c);
    return r;
  }
  const salt = e.salt ?? new Uint8Array(0);
  const payload = e.payload ?? new Uint8Array(0);
  if (salt.length !== 32 || !equal(await commitment(salt, payload), h.commitment)) {
    fail(Checks.commitments, `entry ${ref.index}: payload and salt do not match the header's commitment`);
    return r;
  }
  r.passed.add(Checks.commitments);
  await checkPayload(m, h, e, payload, r);
  return r;
}

/** The decoded-content and identity checks of an entry whose payload opened its commitment. */
async function checkPayload(m: Manifest, h: Header, e: EntryFile, payload: Uint8Array, r: EntryResult): Promise<void> {
  const fail = (c: string, msg: string) => void r.fails.push([c, msg]);
  const decodedForm = (problem: string, equalFn: () => boolean) => {
    if (!problem) {
      if (e.decodedRaw === undefined) fail(Checks.decoded, `entry ${h.index}: the payload is decodable but the entry has no decoded content`);
      else if (e.undecodable) fail(Checks.decoded, `entry ${h.index}: the payload is decodable but the entry says it is not`);
      else if (!equalFn()) fail(Checks.decoded, `entry ${h.index}: the decoded content differs from the payload`);
      else r.passed.add(Checks.decoded);
    } else if (m.format === FORMAT_V1) {
      fail(Checks.decoded, `entry ${h.index}: the payload is not decodable: ${problem}`);
    } else if (e.decodedRaw !== undefined || !e.undecodable) {
      fail(Checks.decoded, `entry ${h.index}: the payload is not decodable (${problem}) but the entry does not say so`);
    } else {
      r.passed.add(Checks.decoded);
      r.notes.push([Checks.decoded, `entry ${h.index} has no decoded form: ${problem}`]);
    }
  };
  if (h.kind >= KIND_TOMBSTONE) {
    const { problem, decoded } = decodePayload(h.kind, payload);
    decodedForm(problem, () => decodedEqual(m.format, decoded, e.decodedRaw));
    if (h.kind === KIND_TOMBSTONE) {
      let ts: { reason: string; erased: { index: number; leaf_hash: string }[] };
      try {
        ts = parseTombstone(payload);
      } catch (err) {
        fail(Checks.identity, `tombstone ${h.index}: the payload is not a tombstone: ${errText(err)}`);
        return;
      }
      if (!((ts.reason === "erasure" && h.subKind === 1) || (ts.reason === "expiry" && h.subKind === 2))) {
        fail(Checks.identity, `tombstone ${h.index}: reason ${JSON.stringify(ts.reason)}, the header's sub-kind ${h.subKind}`);
        return;
      }
      r.names = ts.erased;
    }
    r.passed.add(Checks.identity);
    return;
  }
  const { msg, problem, decoded } = decodePayload(h.kind, payload);
  decodedForm(problem, () => decodedEqual(m.format, decoded, e.decodedRaw));
  if (!msg) {
    fail(Checks.identity, `entry ${h.index}: ${problem}`);
    return;
  }
  if (h.kind === KIND_SPAN) r.payload = matchPayload(m.selector, msg) ? PAYLOAD_YES : PAYLOAD_NO;
  const why = await headerMismatch(h, msg);
  if (why) {
    fail(Checks.identity, `entry ${h.index}: ${why}`);
    return;
  }
  r.passed.add(Checks.identity);
  if (h.kind === KIND_SPAN) {
    const otlp = await checkOtlpSource(h, msg.otlp as OtlpSource | undefined, r.otlp);
    if (otlp) fail(Checks.otlp, `entry ${h.index}: ${otlp}`);
  }
}

const VERSION_KINDS = ["prompt", "policy", "pipeline"];

/** How a span or version entry's header differs from its payload's ids, kind and references; "" when they agree. */
async function headerMismatch(h: Header, msg: Obj): Promise<string> {
  const bytesOf = (x: unknown) => (x instanceof Uint8Array ? x : new Uint8Array(0));
  if (h.kind === KIND_SPAN) {
    const parent = bytesOf(msg.parentSpanId);
    if (h.subKind !== msg.kind) return `the header says span kind ${h.subKind}, the payload ${String(msg.kind)}`;
    if (!equal(h.traceId, bytesOf(msg.traceId))) return "the header's trace id differs from the payload's";
    if (!equal(h.spanId, bytesOf(msg.spanId))) return "the header's span id differs from the payload's";
    if ((parent.length !== 0 && parent.length !== 8) || !equal(h.parentSpanId, parent.length === 0 ? new Uint8Array(8) : parent)) return "the header's parent span id differs from the payload's";
    const refs = (msg.versions ?? {}) as Obj;
    const ids = [refs.prompt, refs.policy, refs.pipeline].map((x) => (isString(x) ? x : ""));
    for (let i = 0; i < 3; i++) {
      if (ids[i] !== "" && !isHex(ids[i], 32)) return `the payload's ${VERSION_KINDS[i]} version reference is not a version id`;
      if (toHex(h.refs[i]) !== (ids[i] || "0".repeat(64))) return `the header's ${VERSION_KINDS[i]} version reference differs from the payload's`;
    }
    return "";
  }
  const k = h.subKind;
  const id = await versionId(k, String(msg.name ?? ""), String(msg.label ?? ""), String(msg.mediaType ?? ""), bytesOf(msg.content));
  if (h.subKind !== msg.kind) return `the header says version kind ${h.subKind}, the payload ${String(msg.kind)}`;
  for (let i = 0; i < 3; i++) {
    if (toHex(h.refs[i]) !== (i === k - 1 ? id : "0".repeat(64))) return "the header's references are not the payload's version id alone";
  }
  if (!isZero(h.traceId) || !isZero(h.spanId) || !isZero(h.parentSpanId)) return "a version entry's header has a trace, span or parent id";
  if (msg.id || (msg.index !== undefined && BigInt(msg.index as bigint) !== 0n) || msg.registeredAt || msg.decodeError) return "the payload sets id, index, registered_at or decode_error";
  return "";
}

/** Version references, erasures and traces: every entry is in the bundle for a reason. */
function crossChecks(v: Verifier, m: Manifest, results: EntryResult[]): void {
  const versions = new Map<string, bigint>(); // the version entries: their index
  const referenced = new Set<string>();
  const named = new Map<bigint, string>();
  for (const r of results) {
    const h = r.header;
    if (!h) continue;
    if (h.kind === KIND_VERSION) versions.set(`${h.subKind}:${toHex(h.refs[h.subKind - 1])}`, h.index);
    if (h.kind === KIND_TOMBSTONE) for (const te of r.names) named.set(BigInt(te.index), String(te.leaf_hash));
  }
  const listed = new Set(m.traces);
  const spans = new Map<string, number>();
  const used = new Set<bigint>();
  for (const r of results) {
    const h = r.header;
    if (!h) continue;
    if (h.kind === KIND_SPAN) {
      const trace = toHex(h.traceId);
      if (!listed.has(trace)) v.fail(Checks.traces, `span entry ${h.index} belongs to trace ${trace}, which the manifest does not list`);
      spans.set(trace, (spans.get(trace) ?? 0) + 1);
      h.refs.forEach((id, i) => {
        if (isZero(id)) return;
        const ref = `${i + 1}:${toHex(id)}`;
        const at = versions.get(ref);
        if (at === undefined) {
          v.fail(Checks.references, `entry ${h.index} references ${VERSION_KINDS[i]} version ${toHex(id.slice(0, 8))}, which the bundle does not hold`);
        } else if (at > h.index) {
          v.fail(Checks.references, `entry ${h.index} references ${VERSION_KINDS[i]} version ${toHex(id.slice(0, 8))}, which was registered after it (entry ${at})`);
        } else {
          referenced.add(ref);
          v.pass(Checks.references);
        }
      });
    }
    const leaf = named.get(h.index);
    if (!r.erased) {
      if (leaf !== undefined) v.fail(Checks.erasures, `a tombstone names entry ${h.index} as erased, but the bundle holds its payload`);
    } else if (leaf === undefined) {
      v.fail(Checks.erasures, `entry ${h.index} has no payload and no tombstone in the bundle names it`);
    } else if (leaf !== toHex(r.leaf ?? new Uint8Array(0))) {
      v.fail(Checks.erasures, `the tombstone names entry ${h.index} with another leaf hash`);
    } else {
      used.add(h.index);
      v.pass(Checks.erasures);
    }
  }
  for (const r of results) {
    const h = r.header;
    if (!h) continue;
    if (h.kind === KIND_VERSION && !referenced.has(`${h.subKind}:${toHex(h.refs[h.subKind - 1])}`)) {
      v.fail(Checks.references, `version entry ${h.index} is referenced by no span of the bundle`);
    }
    if (h.kind === KIND_TOMBSTONE && !r.erased && !r.names.some((te) => used.has(BigInt(te.index)))) {
      v.fail(Checks.erasures, `tombstone ${h.index} names no erased entry of the bundle`);
    }
  }
  for (const t of m.traces) {
    if (!spans.get(t)) v.fail(Checks.traces, `trace ${t} is listed, but the bundle holds none of its spans`);
    else v.pass(Checks.traces);
  }
}

/** The selector check: every listed trace has a span entry that satisfies every condition. */
function checkSelectorHolds(v: Verifier, m: Manifest, results: EntryResult[]): void {
  const s = m.selector;
  const payload = PAYLOAD_CONDITIONS.some((k) => k in s);
  const state = new Map<string, number>(); // 1: unknown, 2: matched
  for (const r of results) {
    const h = r.header;
    if (!h || h.kind !== KIND_SPAN || !matchHeader(m, h)) continue;
    const trace = toHex(h.traceId);
    if (!payload || r.payload === PAYLOAD_YES) state.set(trace, 2);
    else if (r.payload === PAYLOAD_UNKNOWN && !state.has(trace)) state.set(trace, 1);
  }
  const conditions = PAYLOAD_CONDITIONS.filter((k) => k in s).join(", ");
  for (const t of m.traces) {
    const st = state.get(t);
    if (st === 2) v.pass(Checks.selector);
    else if (st === 1) {
      v.pass(Checks.selector);
      v.note(Checks.selector, `trace ${t}: only spans whose payload the bundle does not hold or cannot read (erased, or not a span) can satisfy ${conditions} of the selector; the bundle cannot show that they did`);
    } else v.fail(Checks.selector, `trace ${t}: no span of it in the bundle satisfies the selector`);
  }
}

/**
 * The time range check (docs/BUNDLE.md): range.bin holds the headers of the
 * range and of one entry on each side, chained and anchored by an inclusion
 * proof; every span of the range that satisfies the selector belongs to a
 * listed trace, and every span of the range of a listed trace is in the
 * bundle. Other bundles pass with a note of what they cannot show.
 */
async function checkTimeRange(v: Verifier, m: Manifest, cp: Checkpoint | undefined, results: EntryResult[], files: Map<string, ZipFile>,
  read: (name: string, bounded: boolean) => Promise<Uint8Array>, listed: Map<string, string>): Promise<void> {
  const s = m.selector;
  const r = m.range;
  const timeRange = isTimeRange(s);
  if (!r) {
    if (timeRange && m.format === FORMAT) v.fail(Checks.timeRange, `the selector is a time range, but the bundle holds no ${RANGE} to show that it is complete`);
    else if (timeRange) v.note(Checks.timeRange, `a ${m.format} bundle does not show that its time range is complete: another trace of the range may match the selector`);
    else if ("from" in s || "to" in s) v.note(Checks.timeRange, `the selector has conditions (${PAYLOAD_CONDITIONS.filter((k) => k in s).join(", ")}) that only payloads show: the bundle does not show that no other trace of the time range matches it`);
    else v.note(Checks.timeRange, "the selector is not a time range: the bundle does not show that no other trace matches it");
    return;
  }
  if (!cp) {
    v.skip(Checks.timeRange, "no valid checkpoint to prove the range against");
    return;
  }
  const inBundle = new Map<bigint, EntryResult>();
  for (const e of results) if (e.header) inBundle.set(e.header.index, e);
  const traces = new Set(m.traces);
  const size = BigInt(m.tree_size);
  const first = BigInt(r.first);
  const end = BigInt(r.end);
  const start = first > 0n ? first - 1n : first;
  const stop = end < size ? end + 1n : end;
  if (stop - start > BigInt(MAX_RANGE_HEADERS)) {
    v.fail(Checks.timeRange, `the range holds ${stop - start} headers, more than the limit of ${MAX_RANGE_HEADERS}`);
    return;
  }
  let b: Uint8Array;
  try {
    if (!files.has(RANGE)) throw new Error(`${RANGE} is missing`);
    b = await read(RANGE, true);
  } catch (e) {
    v.fail(Checks.files, errText(e));
    v.fail(Checks.timeRange, errText(e));
    return;
  }
  const fmt = (ns: bigint) => `${ns}ns`;
  let off = 0;
  let prev: Header | undefined;
  let prevLeaf: Uint8Array = new Uint8Array(32);
  for (let i = start; i < stop; i++) {
    if (off + 2 > b.length) {
      v.fail(Checks.timeRange, `${RANGE} ends at entry ${i}; want the headers of entries ${start} to ${stop - 1n}`);
      return;
    }
    const n = (b[off] << 8) | b[off + 1];
    off += 2;
    if (n > MAX_HEADER_BYTES) {
      v.fail(Checks.timeRange, `${RANGE}: entry ${i}: a header of ${n} bytes`);
      return;
    }
    if (off + n > b.length) {
      v.fail(Checks.timeRange, `${RANGE} ends inside the header of entry ${i}`);
      return;
    }
    const hb = b.subarray(off, off + n);
    off += n;
    let h: Header;
    try {
      h = parseHeader(hb);
    } catch (e) {
      v.fail(Checks.timeRange, `${RANGE}: entry ${i}: ${errText(e)}`);
      return;
    }
    const leaf = await leafHash(hb);
    if (h.index !== i || h.tenant !== m.tenant) {
      v.fail(Checks.timeRange, `${RANGE}: the header for entry ${i} says entry ${h.index} of tenant ${JSON.stringify(h.tenant)}`);
      return;
    }
    if (i === 0n && !isZero(h.prevLeafHash)) {
      v.fail(Checks.timeRange, `${RANGE}: entry 0 names a previous leaf`);
      return;
    }
    if (prev && !equal(h.prevLeafHash, prevLeaf)) {
      v.fail(Checks.timeRange, `${RANGE}: the hash chain breaks at entry ${i}: its previous leaf hash is not entry ${i - 1n}'s`);
      return;
    }
    if (prev && h.appendedAtNanos < prev.appendedAtNanos) {
      v.fail(Checks.timeRange, `${RANGE}: entry ${i} was appended before entry ${i - 1n}; appended_at never decreases along a log`);
      return;
    }
    const own = inBundle.get(i);
    if (own && own.leaf && !equal(own.leaf, leaf)) v.fail(Checks.timeRange, `entry ${i}: the header in ${RANGE} is not the one of its entry file`);
    if (i < first) {
      if (m.from === undefined || h.appendedAtNanos >= m.from) v.fail(Checks.timeRange, `entry ${i}, before the range, was appended at ${fmt(h.appendedAtNanos)}, not before from`);
    } else if (i >= end) {
      if (m.to === undefined || h.appendedAtNanos < m.to) v.fail(Checks.timeRange, `entry ${i}, after the range, was appended at ${fmt(h.appendedAtNanos)}, not at or after to`);
    } else if ((m.from !== undefined && h.appendedAtNanos < m.from) || (m.to !== undefined && h.appendedAtNanos >= m.to)) {
      v.fail(Checks.timeRange, `entry ${i}, in the range, was appended at ${fmt(h.appendedAtNanos)}, outside [from, to)`);
    } else if (h.kind !== KIND_SPAN) {
      v.pass(Checks.timeRange);
    } else {
      const trace = toHex(h.traceId);
      if (traces.has(trace) && !own) v.fail(Checks.timeRange, `span entry ${i} of trace ${trace} lies in the range, but the bundle does not hold it`);
      else if (!traces.has(trace) && matchHeader(m, h)) v.fail(Checks.timeRange, `span entry ${i} of trace ${trace} lies in the range and satisfies the selector, but the trace is not listed`);
      else v.pass(Checks.timeRange);
    }
    prev = h;
    prevLeaf = leaf;
  }
  if (off !== b.length) {
    v.fail(Checks.timeRange, `${RANGE} holds more than the headers of entries ${start} to ${stop - 1n}`);
    return;
  }
  const sum = toHex(await sha256(b));
  if (sum !== listed.get(RANGE)) v.fail(Checks.files, `${RANGE}: SHA-256 ${sum.slice(0, 16)}, the manifest says ${JSON.stringify((listed.get(RANGE) ?? "").slice(0, 16))}`);
  else v.pass(Checks.files);
  try {
    await verifyInclusion(stop - 1n, cp.size, prevLeaf, r.proof, cp.root);
  } catch (e) {
    v.fail(Checks.timeRange, `the last header of ${RANGE} (entry ${stop - 1n}) is not proved in the tree of size ${cp.size}: ${errText(e)}`);
  }
}

const EMPTY_ROOT = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/** The bundle's consistency proof against the old checkpoint it carries (format 2), and the pinned checkpoint, if given. */
async function checkConsistency(v: Verifier, m: Manifest, cp: Checkpoint | undefined,
  cons: { old_size: number; new_size: number; proof: Uint8Array[]; old_checkpoint?: string } | undefined, key: VerifierKey, pinned?: string): Promise<void> {
  let proof: Uint8Array[] | undefined;
  if (m.consistency) {
    v.check(Checks.consistency);
    if (!cons) v.fail(Checks.consistency, "the manifest names a consistency proof that could not be read");
    else if (cons.old_size !== m.consistency.old_size || cons.new_size !== m.tree_size) v.fail(Checks.consistency, `${CONSISTENCY} is a proof from ${cons.old_size} to ${cons.new_size}, the manifest says from ${m.consistency.old_size} to ${m.tree_size}`);
    else if (cons.proof.length > MAX_CONSISTENCY_HASHES) v.fail(Checks.consistency, `a consistency proof of ${cons.proof.length} hashes`);
    else proof = cons.proof;
    if (proof && cons) {
      if (!cp) v.skip(Checks.consistency, "no valid bundle checkpoint");
      else if (m.format === FORMAT_V1) {
        if (cons.old_checkpoint) v.fail(Checks.consistency, `${CONSISTENCY} carries an old checkpoint, which is not part of ${FORMAT_V1}`);
        else if (pinned === undefined) v.fail(Checks.consistency, `a ${FORMAT_V1} bundle's consistency proof can be checked only against a pinned checkpoint of size ${cons.old_size}`);
      } else {
        try {
          const old = await openCheckpoint(cons.old_checkpoint ?? "", key);
          if (old.origin !== m.origin || old.size !== BigInt(cons.old_size)) {
            v.fail(Checks.consistency, `the old checkpoint in ${CONSISTENCY} is for ${JSON.stringify(old.origin)} at size ${old.size}`);
          } else {
            try {
              await verifyConsistency(old.size, cp.size, old.root, cp.root, proof);
              v.pass(Checks.consistency);
            } catch (e) {
              v.fail(Checks.consistency, `the log at size ${cp.size} does not extend its checkpoint at size ${old.size}: ${errText(e)}`);
            }
          }
        } catch (e) {
          v.fail(Checks.consistency, `the old checkpoint in ${CONSISTENCY}: ${errText(e)}`);
        }
      }
    }
  }
  if (pinned === undefined) return;
  let old: Checkpoint;
  try {
    old = await openCheckpoint(pinned, key);
  } catch (e) {
    v.fail(Checks.pinned, `the pinned checkpoint does not verify: ${errText(e)}`);
    v.skip(Checks.consistency, "no valid pinned checkpoint");
    return;
  }
  if (old.origin !== m.origin) {
    v.fail(Checks.pinned, `the pinned checkpoint is for ${old.origin}, the bundle for ${m.origin}`);
    v.skip(Checks.consistency, "the pinned checkpoint is for another log");
    return;
  }
  v.pass(Checks.pinned);
  if (!cp) v.skip(Checks.consistency, "no valid bundle checkpoint");
  else if (old.size === cp.size && !equal(old.root, cp.root)) v.fail(Checks.consistency, `the pinned checkpoint and the bundle's have size ${cp.size} and different roots: the log forked`);
  else if (old.size === cp.size) v.pass(Checks.consistency);
  else if (old.size === 0n && equal(old.root, fromBase64(EMPTY_ROOT))) v.pass(Checks.consistency); // the empty tree is a prefix of every tree
  else if (old.size > cp.size) v.fail(Checks.consistency, `the pinned checkpoint (size ${old.size}) is newer than the bundle's (size ${cp.size}); export again`);
  else if (!m.consistency || BigInt(m.consistency.old_size) !== old.size || !proof) v.fail(Checks.consistency, `the bundle holds no consistency proof from size ${old.size}; export with that size`);
  else {
    try {
      await verifyConsistency(old.size, cp.size, old.root, cp.root, proof);
      v.pass(Checks.consistency);
    } catch (e) {
      v.fail(Checks.consistency, `the log at size ${cp.size} does not extend the pinned checkpoint at size ${old.size}: ${errText(e)}`);
    }
  }
}

/** Reads a file of the bundle for display (the report, an entry), after verification. */
export async function readBundleFile(zipBytes: Uint8Array, name: string): Promise<Uint8Array> {
  const f = listZip(zipBytes).find((x) => x.name === name);
  if (!f) throw new Error(`${name} is not in the bundle`);
  return readZipFile(zipBytes, f, maxBytes(name));
}
