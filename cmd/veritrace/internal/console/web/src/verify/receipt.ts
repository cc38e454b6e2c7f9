// The check of an erasure receipt in the browser (docs/RETENTION.md, "The
// receipt"), as the Go verifier does it (audit/bundle/receipt.go, the
// `veritrace verify-receipt` command), with the same check names: (1) the
// log key's signature over the receipt's exact bytes, (2) its checkpoint,
// (3) every tombstone part it names, fetched from the server with an
// inclusion proof into the receipt's checkpoint, and (4) the counts the
// parts add up to. The server is trusted for nothing.

import { equal, sha256, toHex, utf8, utf8Decoder } from "./bytes";
import { KIND_TOMBSTONE, checkCommitment, parseHeader } from "./header";
import { leafHash, verifyInclusion } from "./merkle";
import { openCheckpoint, openNote, parseDigestBody, type Checkpoint, type VerifierKey } from "./note";
import { arrayOf, checkMembers, objectOf, parseStrict, parseTime, stringOf, uintOf, type JObject, type JValue } from "./strictjson";
import type { Step } from "./trace";
import { summarize } from "./verdict";

export const ReceiptChecks = {
  signature: "receipt signature",
  checkpoint: "receipt checkpoint",
  parts: "tombstone parts",
  counts: "counts",
} as const;

export const RECEIPT_V1 = "veritrace-erasure-receipt/v1";
export const RECEIPT_V2 = "veritrace-erasure-receipt/v2";
/** Bounds, as the Go verifier's (MaxReceiptBytes, MaxReceiptParts). */
export const MAX_RECEIPT_BYTES = 64 << 20;
export const MAX_RECEIPT_PARTS = 100_000;
const MAX_TOMBSTONE_NAMES = 1000;
/** The tombstone sub-kind of an erasure (docs/FORMAT.md §2.1). */
const TOMBSTONE_ERASURE = 1;

/** A tombstone entry with its inclusion proof into the receipt's checkpoint. */
export interface ReceiptPart {
  header: Uint8Array;
  payload: Uint8Array;
  salt: Uint8Array;
  proof: Uint8Array[];
}

/** Fetches the tombstone entry at index, proved into the tree of treeSize. */
export type PartSource = (index: bigint, treeSize: bigint) => Promise<ReceiptPart>;

export interface Receipt {
  format: string;
  requestId: string;
  origin: string;
  tenant: string;
  erasedCount: number;
  heldCount: number;
  tombstones: { index: bigint; leafHash: string }[];
  checkpoint: string;
  erased?: string[]; // format 1: "index leaf_hash" of each listed entry
  held?: string[]; // format 1: "index hold_id case_ref"
}

export interface ReceiptVerification {
  steps: Step[];
  /** Every check that was asked for ran and passed. */
  ok: boolean;
  /** Steps 3 and 4 ran (a part source was given). */
  partsChecked: boolean;
  receipt?: Receipt;
}

/**
 * Splits a receipt file into the receipt's JSON and its signature: the
 * CLI's form (the JSON on one line, then the signed note) or the console's
 * download (a JSON object with receipt_json and signature).
 */
export function parseReceiptFile(text: string): { receiptJson: string; signature: string } {
  if (text.length > MAX_RECEIPT_BYTES) throw new Error(`more than a receipt file may hold (${MAX_RECEIPT_BYTES} bytes)`);
  const nl = text.indexOf("\n");
  if (nl >= 0 && text.startsWith("veritrace erasure receipt v1\n", nl + 1)) return { receiptJson: text.slice(0, nl), signature: text.slice(nl + 1) };
  const o = objectOf(parseStrict(text), "receipt file");
  checkMembers(o, ["receipt", "receipt_json", "signature"], ["receipt_json", "signature"], "receipt file");
  return { receiptJson: stringOf(o.get("receipt_json"), "receipt_json"), signature: stringOf(o.get("signature"), "signature") };
}

const BASE = ["format", "request_id", "origin", "tenant", "selector", "legal_basis", "requested_at", "completed_at", "checkpoint"];
const OPTIONAL = ["ticket", "requested_by"];

function hex64(v: JValue | undefined, what: string): string {
  const s = stringOf(v, what);
  if (!/^[0-9a-f]{64}$/.test(s)) throw new Error(`${what}: not 64 lowercase hex digits`);
  return s;
}

function bigUint(v: JValue | undefined, what: string): bigint {
  return BigInt(uintOf(v, what));
}

/** Parses a receipt's JSON strictly, as the Go verifier's parseReceipt. */
export function parseReceipt(json: string): Receipt {
  const o = objectOf(parseStrict(json), "receipt");
  const format = stringOf(o.get("format"), "format");
  let tombstones: Receipt["tombstones"];
  let erasedCount: number;
  let heldCount: number;
  let erased: string[] | undefined;
  let held: string[] | undefined;
  const entries = (v: JValue | undefined, what: string) =>
    arrayOf(v, what).map((e, i) => {
      const eo = objectOf(e, `${what}[${i}]`);
      checkMembers(eo, ["index", "leaf_hash"], ["index", "leaf_hash"], `${what}[${i}]`);
      return { index: bigUint(eo.get("index"), `${what}[${i}].index`), leafHash: hex64(eo.get("leaf_hash"), `${what}[${i}].leaf_hash`) };
    });
  if (format === RECEIPT_V2) {
    const extra = ["erased_count", "held_count", "tombstones"];
    checkMembers(o, [...BASE, ...OPTIONAL, ...extra], [...BASE, ...extra], "receipt");
    erasedCount = uintOf(o.get("erased_count"), "erased_count");
    heldCount = uintOf(o.get("held_count"), "held_count");
    tombstones = entries(o.get("tombstones"), "tombstones");
  } else if (format === RECEIPT_V1) {
    const extra = ["erased", "tombstone_index", "tombstone_indexes"];
    checkMembers(o, [...BASE, ...OPTIONAL, ...extra, "held"], [...BASE, ...extra], "receipt");
    const e = entries(o.get("erased"), "erased");
    erased = e.map((x) => `${x.index} ${x.leafHash}`);
    held = o.has("held") ? arrayOf(o.get("held"), "held").map((h, i) => heldText(objectOf(h, `held[${i}]`), `held[${i}]`)) : [];
    erasedCount = erased.length;
    heldCount = held.length;
    tombstones = arrayOf(o.get("tombstone_indexes"), "tombstone_indexes").map((v, i) => ({ index: bigUint(v, `tombstone_indexes[${i}]`), leafHash: "" }));
    const first = bigUint(o.get("tombstone_index"), "tombstone_index");
    if (tombstones.length > 0 && tombstones[0].index !== first) throw new Error(`tombstone_index ${first} is not the first of tombstone_indexes (${tombstones[0].index})`);
  } else {
    throw new Error(`format ${JSON.stringify(format)} is not a receipt format this verifier knows (${RECEIPT_V2}, ${RECEIPT_V1})`);
  }
  for (const m of ["request_id", "origin", "tenant", "selector", "legal_basis", "checkpoint"]) stringOf(o.get(m), m);
  for (const m of OPTIONAL) if (o.has(m)) stringOf(o.get(m), m);
  for (const m of ["requested_at", "completed_at"]) parseTime(stringOf(o.get(m), m));
  if (tombstones.length === 0) throw new Error("the receipt names no tombstone");
  if (tombstones.length > MAX_RECEIPT_PARTS) throw new Error(`the receipt names ${tombstones.length} tombstone parts, more than ${MAX_RECEIPT_PARTS}`);
  for (let i = 1; i < tombstones.length; i++) {
    if (tombstones[i].index <= tombstones[i - 1].index) throw new Error(`tombstone part ${i + 1} (entry ${tombstones[i].index}) does not follow part ${i} (entry ${tombstones[i - 1].index})`);
  }
  return {
    format, requestId: stringOf(o.get("request_id"), "request_id"), origin: stringOf(o.get("origin"), "origin"), tenant: stringOf(o.get("tenant"), "tenant"),
    erasedCount, heldCount, tombstones, checkpoint: stringOf(o.get("checkpoint"), "checkpoint"), erased, held,
  };
}

function heldText(h: JObject, what: string): string {
  checkMembers(h, ["index", "hold_id", "case_ref"], ["index", "hold_id", "case_ref"], what);
  return `${bigUint(h.get("index"), what + ".index")} ${JSON.stringify(stringOf(h.get("hold_id"), what + ".hold_id"))} ${JSON.stringify(stringOf(h.get("case_ref"), what + ".case_ref"))}`;
}

/** What a tombstone's payload says that the receipt check needs (docs/FORMAT.md, tombstones). */
function parseTombstone(payload: Uint8Array): { reason: string; requestId: string; part: number; parts: number; erased: string[]; held: string[] } {
  const o = objectOf(parseStrict(utf8Decoder.decode(payload)), "tombstone");
  for (const m of ["reason", "erased"]) if (!o.has(m)) throw new Error(`member ${JSON.stringify(m)} is missing`);
  const list = (v: JValue | undefined) => (v === null || v === undefined ? [] : arrayOf(v, "list"));
  const erased = list(o.get("erased")).map((e, i) => {
    const eo = objectOf(e, `erased[${i}]`);
    return `${bigUint(eo.get("index"), `erased[${i}].index`)} ${stringOf(eo.get("leaf_hash"), `erased[${i}].leaf_hash`)}`;
  });
  const held = list(o.get("held")).map((h, i) => {
    return heldText(objectOf(h, `held[${i}]`), `held[${i}]`);
  });
  const num = (m: string) => (o.has(m) ? uintOf(o.get(m), m) : 0);
  return {
    reason: stringOf(o.get("reason"), "reason"), requestId: o.has("request_id") ? stringOf(o.get("request_id"), "request_id") : "",
    part: num("part"), parts: num("parts"), erased, held,
  };
}

/**
 * Checks a receipt (its JSON's exact text and its signed note) with the
 * log key; with parts, also every tombstone part and the counts.
 */
export async function checkReceipt(receiptJson: string, signature: string, key: VerifierKey, parts?: PartSource): Promise<ReceiptVerification> {
  const steps = new Map<string, Step>(Object.values(ReceiptChecks).map((n) => [n, { name: n, passed: 0, failures: [] }]));
  const step = (n: string) => steps.get(n)!;
  const pass = (n: string) => step(n).passed++;
  const fail = (n: string, msg: string) => step(n).failures.push(msg);
  const asked = (s: Step) => parts !== undefined || s.name === ReceiptChecks.signature || s.name === ReceiptChecks.checkpoint;
  let receipt: Receipt | undefined;
  const result = (why?: string): ReceiptVerification => {
    const list = [...steps.values()];
    if (why) for (const s of list) if (s.passed === 0 && s.failures.length === 0) s.skipped = why;
    return { steps: list, ok: list.filter(asked).every((s) => s.failures.length === 0 && !s.skipped), partsChecked: parts !== undefined, receipt };
  };

  // 1. The signature over the receipt's exact bytes, then the receipt.
  let unread = "the receipt's signature does not hold";
  try {
    const n = await openNote(signature, key);
    const body = parseDigestBody(n.text, true);
    if (!equal(body.digest, await sha256(utf8.encode(receiptJson)))) throw new Error("the signature is for another receipt");
    let r: Receipt;
    try {
      r = parseReceipt(receiptJson);
    } catch (e) {
      unread = "the receipt could not be read";
      throw new Error(`the signed receipt is not a receipt: ${(e as Error).message}`);
    }
    if (r.origin !== body.origin) throw new Error(`the signature names the log ${body.origin}, the receipt ${r.origin}`);
    receipt = r;
    pass(ReceiptChecks.signature);
  } catch (e) {
    fail(ReceiptChecks.signature, (e as Error).message);
    return result(unread);
  }

  // 2. The checkpoint covers every part.
  let cp: Checkpoint;
  try {
    cp = await openCheckpoint(receipt.checkpoint, key);
    if (cp.origin !== receipt.origin) throw new Error(`the checkpoint is of ${cp.origin}, the receipt of ${receipt.origin}`);
    receipt.tombstones.forEach((t, k) => {
      if (t.index >= cp.size) throw new Error(`part ${k + 1} is entry ${t.index}, not below the checkpoint's tree size ${cp.size}`);
    });
    pass(ReceiptChecks.checkpoint);
  } catch (e) {
    fail(ReceiptChecks.checkpoint, (e as Error).message);
    return result("the receipt's checkpoint does not hold");
  }
  if (!parts) return result("needs the tombstone entries (an evidence bundle that carries them, or the server)");

  // 3. Every part: in the log at the receipt's checkpoint, and this request's part k of n.
  const n = receipt.tombstones.length;
  const erased: string[] = [];
  const held: string[] = [];
  for (let k = 1; k <= n; k++) {
    const t = receipt.tombstones[k - 1];
    try {
      const p = await parts(t.index, cp.size);
      const h = parseHeader(p.header);
      if (h.index !== t.index) throw new Error(`the entry's header says index ${h.index}`);
      if (h.kind !== KIND_TOMBSTONE || h.subKind !== TOMBSTONE_ERASURE) throw new Error(`the entry is a ${h.kindName} (sub-kind ${h.subKind}), not an erasure tombstone`);
      if (h.tenant !== receipt.tenant) throw new Error(`the entry is of tenant ${h.tenant}, the receipt of ${receipt.tenant}`);
      const leaf = await leafHash(p.header);
      if (t.leafHash && toHex(leaf) !== t.leafHash) throw new Error(`its leaf hash is ${toHex(leaf).slice(0, 16)}…, the receipt says ${t.leafHash.slice(0, 16)}…`);
      await verifyInclusion(t.index, cp.size, leaf, p.proof, cp.root).catch((e) => {
        throw new Error(`not proved in the tree of size ${cp.size}: ${(e as Error).message}`);
      });
      if (!(await checkCommitment(h, p.salt, p.payload))) throw new Error("the payload and salt do not match the header's commitment");
      let ts: ReturnType<typeof parseTombstone>;
      try {
        ts = parseTombstone(p.payload);
      } catch (e) {
        throw new Error(`the payload is not a tombstone: ${(e as Error).message}`);
      }
      if (ts.reason !== "erasure") throw new Error(`reason ${JSON.stringify(ts.reason)}, not an erasure`);
      if (ts.requestId !== receipt.requestId) throw new Error(`it is of request ${JSON.stringify(ts.requestId)}, the receipt of ${JSON.stringify(receipt.requestId)}`);
      const unsplit = ts.part === 0 && ts.parts === 0 && receipt.format === RECEIPT_V1 && n === 1;
      if (!unsplit && (ts.part !== k || ts.parts !== n)) throw new Error(`it says part ${ts.part} of ${ts.parts}, the receipt names it part ${k} of ${n}`);
      if (n > 1 && ts.erased.length + ts.held.length > MAX_TOMBSTONE_NAMES) throw new Error(`it names ${ts.erased.length + ts.held.length} entries, more than a part may`);
      erased.push(...ts.erased);
      held.push(...ts.held);
      pass(ReceiptChecks.parts);
    } catch (e) {
      fail(ReceiptChecks.parts, `part ${k} (entry ${t.index}): ${(e as Error).message}`);
    }
  }
  if (step(ReceiptChecks.parts).failures.length > 0) {
    step(ReceiptChecks.counts).skipped = "not every tombstone part holds";
    return result();
  }

  // 4. What the parts name adds up to the receipt's counts.
  if (erased.length !== receipt.erasedCount) fail(ReceiptChecks.counts, `the parts name ${erased.length} erased entries, the receipt says ${receipt.erasedCount}`);
  if (held.length !== receipt.heldCount) fail(ReceiptChecks.counts, `the parts name ${held.length} held entries, the receipt says ${receipt.heldCount}`);
  const indexes = [...erased, ...held].map((s) => s.split(" ")[0]);
  if (new Set(indexes).size !== indexes.length) fail(ReceiptChecks.counts, "the parts name an entry more than once");
  if (receipt.format === RECEIPT_V1) {
    const i = receipt.erased!.findIndex((e, j) => erased[j] !== undefined && erased[j] !== e);
    if (i >= 0) fail(ReceiptChecks.counts, `erased entry ${i + 1} of the receipt is not the one the parts name`);
    const j = receipt.held!.findIndex((e, k) => held[k] !== undefined && held[k] !== e);
    if (j >= 0) fail(ReceiptChecks.counts, `held entry ${j + 1} of the receipt is not the one the parts name`);
  }
  if (step(ReceiptChecks.counts).failures.length === 0) pass(ReceiptChecks.counts);
  return result();
}

/** Fetches tombstone parts from the server: GetEntry and an inclusion proof at the receipt's tree size. */
export function serverParts(ledger: {
  getEntry(req: { index: bigint }): Promise<{ entry?: { headerBytes: Uint8Array; payload: Uint8Array; salt: Uint8Array } }>;
  getInclusionProof(req: { index: bigint; treeSize: bigint }): Promise<{ proof?: { treeSize: bigint; hashes: Uint8Array[] } }>;
}): PartSource {
  return async (index, treeSize) => {
    const e = (await ledger.getEntry({ index })).entry;
    const pr = (await ledger.getInclusionProof({ index, treeSize })).proof;
    if (!e || !pr) throw new Error("the server answered no entry or no proof");
    if (pr.treeSize !== treeSize) throw new Error(`the server proved into tree size ${pr.treeSize}, not ${treeSize}`);
    return { header: e.headerBytes, payload: e.payload, salt: e.salt, proof: pr.hashes };
  };
}

/**
 * The report's last line, as ReceiptReport.Verdict words it for
 * `veritrace verify-receipt`: VERIFIED when every check ran and passed,
 * SIGNED when the signature and checkpoint passed and no part source was
 * given, NOT VERIFIED otherwise, naming what failed and what was not
 * checked.
 */
export function receiptVerdict(v: ReceiptVerification): string {
  if (!v.ok) return `NOT VERIFIED: ${summarize(v.steps.map((s) => ({ name: s.name, failed: s.failures.length, skipped: s.skipped ?? "" })))}`;
  if (v.partsChecked) return "VERIFIED: every check passed";
  return "SIGNED: the log key signed this receipt and its checkpoint; its tombstone parts were not checked (give the tombstone entries: an evidence bundle or the server)";
}
