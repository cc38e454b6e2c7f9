// Offline verification of an evidence bundle (docs/BUNDLE.md) in the
// browser: the same checks, names and order as the Go verifier
// (audit/bundle/verify.go), against a verifier key the auditor supplies.
// Nothing here talks to a server.

import { equals, fromBinary, fromJsonString, type DescMessage } from "@bufbuild/protobuf";
import { SpanSchema } from "../gen/veritrace/v1/span_pb";
import { VersionSchema } from "../gen/veritrace/v1/version_pb";
import { equal, fromBase64, fromHex, sha256, toHex, utf8Decoder } from "./bytes";
import { KIND_SPAN, KIND_TOMBSTONE, KIND_VERSION, isZero, parseHeader, commitment } from "./header";
import { compact, rawMember } from "./json";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle";
import { NoteError, openCheckpoint, openNote, parseDigestBody, type Checkpoint, type VerifierKey } from "./note";
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
  references: "version references",
  erasures: "erasures",
  pinned: "pinned checkpoint",
  consistency: "consistency proof",
} as const;

const MAX_FAILURES = 20;
const FORMAT = "veritrace-bundle/v1";
const MANIFEST = "manifest.json";
const SIGNATURE = "manifest.sig";
const CHECKPOINT = "checkpoint.txt";

export interface Check {
  name: string;
  passed: number;
  failed: number;
  failures: string[]; // at most 20
  skipped: string; // why the check did not run, if it did not
}

export function checkOK(c: Check): boolean {
  return c.failed === 0 && c.skipped === "";
}

export interface Report {
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
  selector: Record<string, string>;
  tree_size: number;
  traces: string[];
  entries: { index: number; kind: string; file: string }[];
  consistency?: { old_size: number; file: string };
  files: { name: string; sha256: string }[];
}

class Verifier {
  report: Report = { origin: "", treeSize: 0n, entries: 0, traces: 0, checks: [] };
  private byName = new Map<string, Check>();

  check(name: string): Check {
    let c = this.byName.get(name);
    if (!c) {
      c = { name, passed: 0, failed: 0, failures: [], skipped: "" };
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

/** Checks the shape Go's json.Unmarshal would insist on for the fields the verifier uses. */
function parseManifest(text: string): Manifest {
  const m = JSON.parse(text) as Record<string, unknown>;
  if (typeof m !== "object" || m === null || Array.isArray(m)) throw new Error("not an object");
  const str = (k: string) => {
    if (m[k] !== undefined && m[k] !== null && !isString(m[k])) throw new Error(`${k} is not a string`);
  };
  ["format", "origin", "tenant", "log_key"].forEach(str);
  if (m.tree_size !== undefined && m.tree_size !== null && !isUint(m.tree_size)) throw new Error("tree_size is not an unsigned integer");
  const arr = (k: string, item: (x: unknown) => boolean) => {
    const v = m[k];
    if (v === undefined || v === null) return;
    if (!Array.isArray(v) || !v.every(item)) throw new Error(`${k} is malformed`);
  };
  const obj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
  arr("traces", isString);
  arr("entries", (x) => obj(x) && (x.index === undefined || isUint(x.index)) && (x.kind === undefined || isString(x.kind)) && (x.file === undefined || isString(x.file)));
  arr("files", (x) => obj(x) && (x.name === undefined || isString(x.name)) && (x.sha256 === undefined || isString(x.sha256)));
  if (m.consistency !== undefined && m.consistency !== null) {
    const c = m.consistency;
    if (!obj(c) || (c.old_size !== undefined && !isUint(c.old_size)) || (c.file !== undefined && !isString(c.file))) throw new Error("consistency is malformed");
  }
  return {
    format: (m.format as string) ?? "", origin: (m.origin as string) ?? "", tenant: (m.tenant as string) ?? "",
    log_key: (m.log_key as string) ?? "", created_at: String(m.created_at ?? ""),
    selector: (obj(m.selector) ? m.selector : {}) as Record<string, string>, tree_size: (m.tree_size as number) ?? 0,
    traces: (m.traces as string[]) ?? [],
    entries: ((m.entries as Record<string, unknown>[]) ?? []).map((e) => ({ index: (e.index as number) ?? 0, kind: (e.kind as string) ?? "", file: (e.file as string) ?? "" })),
    consistency: obj(m.consistency) ? { old_size: (m.consistency.old_size as number) ?? 0, file: (m.consistency.file as string) ?? "" } : undefined,
    files: ((m.files as Record<string, unknown>[]) ?? []).map((f) => ({ name: (f.name as string) ?? "", sha256: (f.sha256 as string) ?? "" })),
  };
}

/** An entry file (docs/BUNDLE.md), decoded as strictly as Go's json.Unmarshal into bundle.Entry. */
interface EntryFile {
  index: number;
  header: Uint8Array;
  leafHash: Uint8Array;
  payload?: Uint8Array;
  salt?: Uint8Array;
  erased: boolean;
  inclusionProof: Uint8Array[];
  decodedRaw?: string;
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
  const e = JSON.parse(text) as Record<string, unknown>;
  if (typeof e !== "object" || e === null || Array.isArray(e)) throw new Error("not an object");
  if (e.index !== undefined && e.index !== null && !isUint(e.index)) throw new Error("index is not an unsigned integer");
  if (e.erased !== undefined && e.erased !== null && typeof e.erased !== "boolean") throw new Error("erased is not a boolean");
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
  };
}

/** Whether a decoded message (or one inside it) holds fields its schema does not know. */
function hasUnknown(v: unknown, depth = 0): boolean {
  if (depth > 64 || typeof v !== "object" || v === null) return false;
  if (v instanceof Uint8Array) return false;
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.$unknown) && o.$unknown.length > 0) return true;
  return Object.values(o).some((x) => hasUnknown(x, depth + 1));
}

function decodedMatches(schema: DescMessage, payload: Uint8Array, decodedRaw: string | undefined): boolean {
  const msg = fromBinary(schema, payload);
  if (decodedRaw === undefined || hasUnknown(msg)) return false;
  const dec = fromJsonString(schema, decodedRaw);
  return equals(schema, msg, dec);
}

/**
 * Verifies a bundle (the zip file's bytes) against the log's verifier key
 * and, when given, a pinned checkpoint (a signed note the auditor already
 * holds). It never throws for bad input: every problem is a failed check.
 */
export async function verifyBundle(zipBytes: Uint8Array, key: VerifierKey, pinned?: string): Promise<Report> {
  const v = new Verifier();
  for (const name of [Checks.signature, Checks.manifest, Checks.files, Checks.checkpoint, Checks.headers, Checks.commitments,
    Checks.leafHashes, Checks.inclusion, Checks.decoded, Checks.references, Checks.erasures]) {
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
    if (files.has(f.name)) v.fail(Checks.files, `${f.name} appears twice`);
    files.set(f.name, f);
  }
  const read = async (name: string): Promise<Uint8Array> => {
    const f = files.get(name);
    if (!f) throw new Error(`${name} is missing`);
    return readZipFile(zipBytes, f);
  };
  const readText = async (name: string) => utf8Decoder.decode(await read(name));

  // The manifest and its signature.
  let mb: Uint8Array;
  try {
    mb = await read(MANIFEST);
  } catch (e) {
    v.fail(Checks.manifest, errText(e));
    v.skipAll("there is no manifest");
    return;
  }
  let m: Manifest;
  try {
    m = parseManifest(utf8Decoder.decode(mb));
    if (m.format !== FORMAT) throw new Error(`format ${JSON.stringify(m.format)}`);
  } catch (e) {
    v.fail(Checks.manifest, `manifest.json is not a ${FORMAT} manifest: ${errText(e)}`);
    v.skipAll("the manifest could not be read");
    return;
  }
  v.pass(Checks.manifest);
  Object.assign(v.report, { origin: m.origin, treeSize: BigInt(m.tree_size), entries: m.entries.length, traces: m.traces.length, manifest: m });
  try {
    const n = await openNote(await readText(SIGNATURE), key);
    const { origin, digest } = parseDigestBody(n.text);
    if (!equal(digest, await sha256(mb))) v.fail(Checks.signature, `the signature is for another manifest (signed ${toHex(digest.slice(0, 8))})`);
    else if (origin !== m.origin) v.fail(Checks.signature, `the signature names origin ${JSON.stringify(origin)}, the manifest ${JSON.stringify(m.origin)}`);
    else v.pass(Checks.signature);
  } catch (e) {
    v.fail(Checks.signature, e instanceof NoteError ? `manifest.sig does not verify with key ${key.name}: ${e.message}` : errText(e));
  }

  // Every file listed, with its digest; nothing unlisted.
  const listed = new Set([MANIFEST, SIGNATURE]);
  for (const fd of m.files) {
    listed.add(fd.name);
    let b: Uint8Array;
    try {
      b = await read(fd.name);
    } catch (e) {
      v.fail(Checks.files, errText(e));
      continue;
    }
    const sum = toHex(await sha256(b));
    if (sum !== fd.sha256) {
      v.fail(Checks.files, `${fd.name}: SHA-256 ${sum.slice(0, 16)}, manifest says ${fd.sha256.slice(0, 16)}`);
      continue;
    }
    v.pass(Checks.files);
  }
  for (const name of [...files.keys()].filter((n) => !listed.has(n)).sort()) {
    v.fail(Checks.files, `${name} is not listed in the manifest`);
  }

  // The checkpoint.
  let cp: Checkpoint | undefined;
  try {
    const c = await openCheckpoint(await readText(CHECKPOINT), key);
    if (c.origin !== m.origin || c.size !== BigInt(m.tree_size)) {
      v.fail(Checks.checkpoint, `checkpoint is for ${c.origin} at size ${c.size}, the manifest says ${m.origin} at ${m.tree_size}`);
    } else {
      cp = c;
      v.pass(Checks.checkpoint);
    }
  } catch (e) {
    v.fail(Checks.checkpoint, errText(e));
  }

  // Every entry.
  const prefix = key.name + "/";
  const tenant = m.origin.startsWith(prefix) ? m.origin.slice(prefix.length) : m.origin;
  const versions = new Set<string>();
  const spanRefs: { index: bigint; refs: Uint8Array[] }[] = [];
  const erasedLeaf = new Map<bigint, Uint8Array>();
  const tombstoned = new Map<bigint, string>();
  for (const ref of m.entries) {
    let e: EntryFile;
    try {
      e = parseEntry(await readText(ref.file));
    } catch (err) {
      v.fail(Checks.headers, `entry ${ref.index}: ${errText(err)}`);
      continue;
    }
    let h;
    try {
      h = parseHeader(e.header);
    } catch (err) {
      v.fail(Checks.headers, `entry ${ref.index}: ${errText(err)}`);
      continue;
    }
    if (h.index !== BigInt(ref.index) || e.index !== ref.index) {
      v.fail(Checks.headers, `entry ${ref.index}: the header says index ${h.index}, the file ${e.index}`);
      continue;
    }
    if (h.tenant !== m.tenant || h.tenant !== tenant) {
      v.fail(Checks.headers, `entry ${ref.index}: the header says tenant ${JSON.stringify(h.tenant)}, the bundle is for ${JSON.stringify(m.tenant)}`);
      continue;
    }
    if (h.kindName !== ref.kind) {
      v.fail(Checks.headers, `entry ${ref.index}: the header says kind ${h.kindName}, the manifest ${ref.kind}`);
      continue;
    }
    v.pass(Checks.headers);
    const leaf = await leafHash(e.header);
    if (!equal(leaf, e.leafHash)) v.fail(Checks.leafHashes, `entry ${ref.index}: leaf hash ${toHex(e.leafHash.slice(0, 8))}, the header hashes to ${toHex(leaf.slice(0, 8))}`);
    else v.pass(Checks.leafHashes);
    if (e.erased) {
      v.pass(Checks.commitments); // nothing to open; the header still counts
      erasedLeaf.set(h.index, leaf);
    } else if (!equal(await commitment(e.salt ?? new Uint8Array(0), e.payload ?? new Uint8Array(0)), h.commitment)) {
      v.fail(Checks.commitments, `entry ${ref.index}: payload and salt do not match the header's commitment`);
    } else {
      v.pass(Checks.commitments);
      checkDecoded(v, h.kind, ref.index, e);
    }
    if (!cp) {
      v.skip(Checks.inclusion, "no valid checkpoint to prove against");
    } else {
      try {
        await verifyInclusion(h.index, cp.size, leaf, e.inclusionProof, cp.root);
        v.pass(Checks.inclusion);
      } catch (err) {
        v.fail(Checks.inclusion, `entry ${ref.index} is not proved in the tree of size ${cp.size}: ${errText(err)}`);
      }
    }
    if (h.kind === KIND_TOMBSTONE && !e.erased) {
      try {
        const ts = JSON.parse(utf8Decoder.decode(e.payload ?? new Uint8Array(0))) as { erased?: { index: number; leaf_hash: string }[] };
        for (const te of ts.erased ?? []) tombstoned.set(BigInt(te.index), te.leaf_hash);
      } catch (err) {
        v.fail(Checks.erasures, `tombstone ${h.index} does not parse: ${errText(err)}`);
      }
    }
    if (h.kind === KIND_VERSION) versions.add(toHex(h.refs[h.subKind - 1]));
    else if (h.kind === KIND_SPAN) spanRefs.push({ index: h.index, refs: h.refs });
  }
  const kinds = ["prompt", "policy", "pipeline"];
  for (const s of spanRefs) {
    s.refs.forEach((id, k) => {
      if (isZero(id)) return;
      if (versions.has(toHex(id))) v.pass(Checks.references);
      else v.fail(Checks.references, `entry ${s.index} references ${kinds[k]} version ${toHex(id.slice(0, 8))}, which the bundle does not hold`);
    });
  }
  for (const [i, leaf] of erasedLeaf) {
    const named = tombstoned.get(i);
    if (named === undefined) v.fail(Checks.erasures, `entry ${i} has no payload and no tombstone in the bundle names it`);
    else if (named !== toHex(leaf)) v.fail(Checks.erasures, `the tombstone names entry ${i} with another leaf hash`);
    else v.pass(Checks.erasures);
  }

  if (pinned !== undefined) await checkConsistency(v, m, read, cp, key, pinned);
}

function checkDecoded(v: Verifier, kind: number, index: number, e: EntryFile): void {
  const payload = e.payload ?? new Uint8Array(0);
  try {
    if (kind === KIND_SPAN || kind === KIND_VERSION) {
      const schema = kind === KIND_SPAN ? SpanSchema : VersionSchema;
      try {
        fromBinary(schema, payload);
      } catch (err) {
        v.fail(Checks.decoded, `entry ${index}: the payload does not decode: ${errText(err)}`);
        return;
      }
      if (!decodedMatches(schema, payload, e.decodedRaw)) throw new Error("differs");
    } else if (kind >= 4) {
      // Tombstone, retention and hold entries: the same JSON, compacted.
      if (e.decodedRaw === undefined || compact(utf8Decoder.decode(payload)) !== compact(e.decodedRaw)) throw new Error("differs");
    }
    v.pass(Checks.decoded);
  } catch {
    v.fail(Checks.decoded, `entry ${index}: the decoded content differs from the payload`);
  }
}

const EMPTY_ROOT = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

async function checkConsistency(v: Verifier, m: Manifest, read: (n: string) => Promise<Uint8Array>, cp: Checkpoint | undefined, key: VerifierKey, pinned: string): Promise<void> {
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
  if (!cp) {
    v.skip(Checks.consistency, "no valid bundle checkpoint");
    return;
  }
  if (old.size === cp.size) {
    if (!equal(old.root, cp.root)) v.fail(Checks.consistency, `the pinned checkpoint and the bundle's have size ${cp.size} and different roots: the log forked`);
    else v.pass(Checks.consistency);
    return;
  }
  if (old.size === 0n && equal(old.root, fromBase64(EMPTY_ROOT))) {
    v.pass(Checks.consistency); // the empty tree is a prefix of every tree
    return;
  }
  if (old.size > cp.size) {
    v.fail(Checks.consistency, `the pinned checkpoint (size ${old.size}) is newer than the bundle's (size ${cp.size}); export again`);
    return;
  }
  if (!m.consistency || BigInt(m.consistency.old_size) !== old.size) {
    v.fail(Checks.consistency, `the bundle holds no consistency proof from size ${old.size}; export with that size`);
    return;
  }
  let proof: Uint8Array[];
  try {
    const c = JSON.parse(utf8Decoder.decode(await read(m.consistency.file))) as { old_size: unknown; new_size: unknown; proof: unknown };
    if (!isUint(c.old_size) || !isUint(c.new_size) || BigInt(c.old_size) !== old.size || BigInt(c.new_size) !== cp.size) throw new Error("wrong sizes");
    proof = ((c.proof ?? []) as unknown[]).map((p, i) => jsonHash(p, `proof[${i}]`));
  } catch (e) {
    v.fail(Checks.consistency, `${m.consistency.file} is not a proof from ${old.size} to ${cp.size}: ${errText(e)}`);
    return;
  }
  try {
    await verifyConsistency(old.size, cp.size, old.root, cp.root, proof);
    v.pass(Checks.consistency);
  } catch (e) {
    v.fail(Checks.consistency, `the log at size ${cp.size} does not extend the pinned checkpoint at size ${old.size}: ${errText(e)}`);
  }
}

/** Reads a file of the bundle for display (the report, an entry), after verification. */
export async function readBundleFile(zipBytes: Uint8Array, name: string): Promise<Uint8Array> {
  const f = listZip(zipBytes).find((x) => x.name === name);
  if (!f) throw new Error(`${name} is not in the bundle`);
  return readZipFile(zipBytes, f);
}

