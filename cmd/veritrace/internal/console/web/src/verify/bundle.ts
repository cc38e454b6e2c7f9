// Offline verification of an evidence bundle (docs/BUNDLE.md) in the
// browser: the same checks, names, order and counts as the Go verifier
// (audit/bundle/verify.go; web/testdata/bundles.json holds its verdicts),
// against a verifier key the auditor supplies. Nothing here talks to a
// server.

import { equals, fromBinary, fromJsonString, type DescMessage } from "@bufbuild/protobuf";
import { SpanSchema } from "../gen/veritrace/v1/span_pb";
import { VersionSchema } from "../gen/veritrace/v1/version_pb";
import { equal, fromBase64, fromHex, sha256, toHex, utf8Decoder } from "./bytes";
import { KIND_SPAN, KIND_TOMBSTONE, KIND_VERSION, isZero, parseHeader, commitment, validName, versionId, type Header } from "./header";
import { compact, rawMember } from "./json";
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
  pinned: "pinned checkpoint",
  consistency: "consistency proof",
} as const;

const MAX_FAILURES = 20;
const FORMAT = "veritrace-bundle/v2";
const FORMAT_V1 = "veritrace-bundle/v1";
const MANIFEST = "manifest.json";
const SIGNATURE = "manifest.sig";
const CHECKPOINT = "checkpoint.txt";
const CONSISTENCY = "consistency.json";
const REPORT = "report.html";
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
  files: { name: string; sha256: string }[];
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

/** A non-negative integer JSON number, as Go decodes into uint64. */
function isUint(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function isString(v: unknown): v is string {
  return typeof v === "string";
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);

/** JSON.parse, refusing an object that names a member twice (JSON.parse keeps the last; another verifier might keep the first). */
function parseNoDuplicates(text: string): unknown {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const str = (): string => {
    const start = i;
    if (text[i] !== '"') throw new SyntaxError("want a string");
    for (i++; i < text.length; i++) {
      if (text[i] === "\\") i++;
      else if (text[i] === '"') {
        i++;
        return JSON.parse(text.slice(start, i)) as string;
      }
    }
    throw new SyntaxError("unterminated string");
  };
  const value = (depth: number): void => {
    if (depth > 10000) throw new SyntaxError("nested too deep");
    ws();
    if (text[i] === "{") {
      i++;
      const names = new Set<string>();
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        const name = str();
        if (names.has(name)) throw new SyntaxError(`member ${JSON.stringify(name)} appears twice`);
        names.add(name);
        ws();
        if (text[i++] !== ":") throw new SyntaxError("want ':'");
        value(depth + 1);
        ws();
        if (text[i] === "}") return void i++;
        if (text[i++] !== ",") throw new SyntaxError("want ',' or '}'");
      }
    } else if (text[i] === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === "]") return void i++;
        if (text[i++] !== ",") throw new SyntaxError("want ',' or ']'");
      }
    } else if (text[i] === '"') {
      str();
    } else {
      const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
      if (!m) throw new SyntaxError("want a value");
      i += m[0].length;
    }
  };
  value(0);
  ws();
  if (i !== text.length) throw new SyntaxError("data after the JSON value");
  return JSON.parse(text);
}

/** Refuses members other than those allowed, as Go's DisallowUnknownFields does. */
function onlyMembers(o: Obj, allowed: string[], what: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw new Error(`json: unknown field ${JSON.stringify(k)} in ${what}`);
}

const SELECTOR_V1 = ["trace_id", "session_id", "subject_id", "from", "to"];
const SELECTOR = [...SELECTOR_V1, "version_id", "kind", "model", "errors_only"];

/** Parses manifest.json strictly: the members of docs/BUNDLE.md only, each of its type. */
function parseManifest(text: string): Manifest {
  const m = parseNoDuplicates(text);
  if (!isObj(m)) throw new Error("not an object");
  onlyMembers(m, ["format", "origin", "tenant", "log_key", "created_at", "selector", "tree_size", "traces", "entries", "consistency", "files"], "manifest");
  const str = (o: Obj, k: string) => {
    if (o[k] !== undefined && o[k] !== null && !isString(o[k])) throw new Error(`${k} is not a string`);
  };
  ["format", "origin", "tenant", "log_key", "created_at"].forEach((k) => str(m, k));
  if (m.tree_size !== undefined && m.tree_size !== null && !isUint(m.tree_size)) throw new Error("tree_size is not an unsigned integer");
  const arr = (k: string, item: (x: unknown) => boolean) => {
    const v = m[k];
    if (v === undefined || v === null) return;
    if (!Array.isArray(v) || !v.every(item)) throw new Error(`${k} is malformed`);
  };
  arr("traces", isString);
  arr("entries", (x) => isObj(x) && (onlyMembers(x, ["index", "kind", "file"], "entries"), true) && (x.index === undefined || isUint(x.index)) && (x.kind === undefined || isString(x.kind)) && (x.file === undefined || isString(x.file)));
  arr("files", (x) => isObj(x) && (onlyMembers(x, ["name", "sha256"], "files"), true) && (x.name === undefined || isString(x.name)) && (x.sha256 === undefined || isString(x.sha256)));
  if (m.consistency !== undefined && m.consistency !== null) {
    const c = m.consistency;
    if (!isObj(c) || (c.old_size !== undefined && !isUint(c.old_size)) || (c.file !== undefined && !isString(c.file))) throw new Error("consistency is malformed");
    onlyMembers(c, ["old_size", "file"], "consistency");
  }
  if (m.selector !== undefined && m.selector !== null) {
    if (!isObj(m.selector)) throw new Error("selector is not an object");
    onlyMembers(m.selector, SELECTOR, "selector");
  }
  return {
    format: (m.format as string) ?? "", origin: (m.origin as string) ?? "", tenant: (m.tenant as string) ?? "",
    log_key: (m.log_key as string) ?? "", created_at: String(m.created_at ?? ""),
    selector: (isObj(m.selector) ? m.selector : {}) as Record<string, unknown>, tree_size: (m.tree_size as number) ?? 0,
    traces: (m.traces as string[]) ?? [],
    entries: ((m.entries as Obj[]) ?? []).map((e) => ({ index: (e.index as number) ?? 0, kind: (e.kind as string) ?? "", file: (e.file as string) ?? "" })),
    consistency: isObj(m.consistency) ? { old_size: (m.consistency.old_size as number) ?? 0, file: (m.consistency.file as string) ?? "" } : undefined,
    files: ((m.files as Obj[]) ?? []).map((f) => ({ name: (f.name as string) ?? "", sha256: (f.sha256 as string) ?? "" })),
  };
}

const isHex = (s: unknown, n: number): boolean => isString(s) && s.length === 2 * n && /^[0-9a-f]*$/.test(s);
const SPAN_KINDS = ["generation", "embedding", "retrieval", "tool", "agent", "chain", "guardrail", "other"];

/** The manifest's structure (check 2 of docs/BUNDLE.md); returns why it is not valid, or "". */
function manifestProblem(m: Manifest, key: VerifierKey): string {
  if (m.format !== FORMAT && m.format !== FORMAT_V1) return `format ${JSON.stringify(m.format)}, want ${JSON.stringify(FORMAT)} or ${JSON.stringify(FORMAT_V1)}`;
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
  const names = new Set<string>();
  for (const f of m.files) {
    if (names.has(f.name)) return `file ${JSON.stringify(f.name)} is listed twice`;
    if (!want.has(f.name)) return `file ${JSON.stringify(f.name)} is listed but is not an entry file, ${CHECKPOINT}, ${REPORT} or ${CONSISTENCY}`;
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

function jsonBytes(v: unknown, what: string): Uint8Array | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isString(v)) throw new Error(`${what} is not base64`);
  return fromBase64(v.replace(/[\r\n]/g, ""));
}

function jsonHash(v: unknown, what: string): Uint8Array {
  if (!isString(v)) throw new Error(`${what} is not hex`);
  const b = fromHex(v);
  if (b.length !== 32) throw new Error(`${what}: want 32 bytes of hex`);
  return b;
}

function parseEntry(text: string): EntryFile {
  const e = parseNoDuplicates(text);
  if (!isObj(e)) throw new Error("not an object");
  onlyMembers(e, ["index", "header", "leaf_hash", "payload", "salt", "erased", "inclusion_proof", "decoded", "undecodable"], "entry file");
  if (e.index !== undefined && e.index !== null && !isUint(e.index)) throw new Error("index is not an unsigned integer");
  if (e.erased !== undefined && e.erased !== null && typeof e.erased !== "boolean") throw new Error("erased is not a boolean");
  if (e.undecodable !== undefined && e.undecodable !== null && !isString(e.undecodable)) throw new Error("undecodable is not a string");
  const proof = e.inclusion_proof ?? [];
  if (!Array.isArray(proof)) throw new Error("inclusion_proof is not a list");
  return {
    index: (e.index as number) ?? 0,
    header: jsonBytes(e.header, "header") ?? new Uint8Array(0),
    leafHash: e.leaf_hash === undefined ? new Uint8Array(32) : jsonHash(e.leaf_hash, "leaf_hash"),
    payload: jsonBytes(e.payload, "payload"),
    salt: jsonBytes(e.salt, "salt"),
    erased: e.erased === true,
    inclusionProof: proof.map((p, i) => jsonHash(p, `inclusion_proof[${i}]`)),
    decodedRaw: rawMember(text, "decoded"),
    undecodable: (e.undecodable as string | null) ?? undefined,
  };
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
  otlp: OtlpFacts;
}

/**
 * Verifies a bundle (the zip file's bytes) against the log's verifier key
 * and, when given, a pinned checkpoint (a signed note the auditor already
 * holds). It never throws for bad input: every problem is a failed check.
 */
export async function verifyBundle(zipBytes: Uint8Array, key: VerifierKey, pinned?: string): Promise<Report> {
  const v = new Verifier();
  for (const name of [Checks.signature, Checks.manifest, Checks.files, Checks.checkpoint, Checks.headers, Checks.commitments,
    Checks.leafHashes, Checks.inclusion, Checks.decoded, Checks.identity, Checks.references, Checks.erasures, Checks.traces, Checks.otlp]) {
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
  for (const f of list) {
    if (files.has(f.name)) {
      v.fail(Checks.files, `${JSON.stringify(f.name)} appears twice`);
      continue;
    }
    files.set(f.name, f);
  }
  const read = async (name: string): Promise<Uint8Array> => {
    const f = files.get(name);
    if (!f) throw new Error(`${name} is missing`);
    return readZipFile(zipBytes, f);
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
        const c = parseNoDuplicates(utf8Decoder.decode(b));
        if (!isObj(c)) throw new Error("not an object");
        onlyMembers(c, ["old_size", "new_size", "proof", "old_checkpoint"], CONSISTENCY);
        if (!isUint(c.old_size) || !isUint(c.new_size)) throw new Error("sizes are not unsigned integers");
        if (c.old_checkpoint !== undefined && c.old_checkpoint !== null && !isString(c.old_checkpoint)) throw new Error("old_checkpoint is not a string");
        cons = {
          old_size: c.old_size, new_size: c.new_size, proof: ((c.proof ?? []) as unknown[]).map((p, i) => jsonHash(p, `proof[${i}]`)),
          old_checkpoint: (c.old_checkpoint as string | null) ?? undefined,
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
  read: (n: string) => Promise<Uint8Array>, digest: (name: string, b: Uint8Array, t: { pass: (c: string) => void; fail: (c: string, m: string) => void }) => Promise<void>): Promise<EntryResult> {
  const r: EntryResult = { passed: new Set(), fails: [], notes: [], erased: false, names: [], otlp: { passed: false } };
  const fail = (c: string, msg: string) => void r.fails.push([c, msg]);
  let b: Uint8Array;
  try {
    b = await read(ref.file);
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
  if (h.kind >= 4) {
    const want = compactJSON(payload);
    decodedForm(want === undefined ? "not UTF-8 JSON" : "", () => {
      try {
        return compact(e.decodedRaw ?? "") === want;
      } catch {
        return false;
      }
    });
    if (h.kind === KIND_TOMBSTONE) {
      let ts: Obj;
      try {
        const t = JSON.parse(utf8Decoder.decode(payload));
        if (!isObj(t)) throw new Error("not an object");
        ts = t;
      } catch (err) {
        fail(Checks.identity, `tombstone ${h.index}: the payload is not a tombstone: ${errText(err)}`);
        return;
      }
      if (!((ts.reason === "erasure" && h.subKind === 1) || (ts.reason === "expiry" && h.subKind === 2))) {
        fail(Checks.identity, `tombstone ${h.index}: reason ${JSON.stringify(ts.reason)}, the header's sub-kind ${h.subKind}`);
        return;
      }
      r.names = Array.isArray(ts.erased) ? (ts.erased as { index: number; leaf_hash: string }[]) : [];
    }
    r.passed.add(Checks.identity);
    return;
  }
  const schema: DescMessage = h.kind === KIND_SPAN ? SpanSchema : VersionSchema;
  let msg: Obj | undefined;
  let problem = "";
  try {
    msg = fromBinary(schema, payload) as unknown as Obj;
    problem = decodableProblem(msg);
  } catch (err) {
    problem = `does not parse as ${schema.typeName}: ${errText(err)}`;
  }
  decodedForm(problem, () => {
    try {
      return equals(schema, msg as never, fromJsonString(schema, e.decodedRaw ?? "") as never);
    } catch {
      return false;
    }
  });
  if (!msg) {
    fail(Checks.identity, `entry ${h.index}: ${problem}`);
    return;
  }
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
  const versions = new Set<string>();
  const referenced = new Set<string>();
  const named = new Map<bigint, string>();
  for (const r of results) {
    const h = r.header;
    if (!h) continue;
    if (h.kind === KIND_VERSION) versions.add(`${h.subKind}:${toHex(h.refs[h.subKind - 1])}`);
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
        if (versions.has(ref)) {
          referenced.add(ref);
          v.pass(Checks.references);
        } else {
          v.fail(Checks.references, `entry ${h.index} references ${VERSION_KINDS[i]} version ${toHex(id.slice(0, 8))}, which the bundle does not hold`);
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
  return readZipFile(zipBytes, f);
}
