// Verification of a trace shown in the console, in the browser: every
// span's entry is fetched with its header bytes, payload and salt, and
// checked against a checkpoint signed by the log key the auditor pinned.
// The server is trusted for nothing: a wrong answer fails a check.

import { equals, fromBinary } from "@bufbuild/protobuf";
import type { Api } from "../api";
import type { GetTraceResponse, SpanNode } from "../gen/veritrace/v1/audit_pb";
import { SpanSchema } from "../gen/veritrace/v1/span_pb";
import { VersionSchema, type Version } from "../gen/veritrace/v1/version_pb";
import { equal, toHex } from "./bytes";
import { KIND_SPAN, KIND_VERSION, checkCommitment, isZero, parseHeader, versionId, type Header } from "./header";
import { leafHash, verifyConsistency, verifyInclusion } from "./merkle";
import { openCheckpoint, type Checkpoint, type VerifierKey } from "./note";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** Entries checked at once. */
const PARALLEL = 8;

/** Runs fn on every item, at most limit at a time. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function nanos(t: Timestamp): bigint {
  return t.seconds * 1_000_000_000n + BigInt(t.nanos);
}

function timeText(ns: bigint): string {
  const ms = ns / 1_000_000n;
  return ms >= -8_640_000_000_000_000n && ms <= 8_640_000_000_000_000n ? new Date(Number(ms)).toISOString() : `${ns} ns`;
}

export interface Step {
  name: string;
  passed: number;
  failures: string[];
  skipped?: string;
}

export const TraceChecks = {
  checkpoint: "checkpoint signature",
  headers: "entry headers",
  leaves: "leaf hashes",
  commitments: "payload commitments",
  content: "content shown = content recorded",
  inclusion: "inclusion proofs",
  versions: "version ids",
  references: "version references",
  consistency: "consistency with the pinned checkpoint",
} as const;

export interface TraceVerification {
  steps: Step[];
  ok: boolean;
  checkpoint?: Checkpoint;
  checkpointNote?: string;
  entries: number;
}

function flatten(nodes: SpanNode[], out: SpanNode[] = []): SpanNode[] {
  for (const n of nodes) {
    out.push(n);
    flatten(n.children, out);
  }
  return out;
}

/**
 * Verifies a trace as GetTrace returned it (and as the console shows it)
 * against a checkpoint signed by key. With a pinned checkpoint of the
 * same log, also checks that the log only grew since.
 */
export async function verifyTrace(api: Api, tenant: string, trace: GetTraceResponse, key: VerifierKey, pinnedNote?: string | null, onProgress?: (done: number, total: number) => void): Promise<TraceVerification> {
  const steps = new Map<string, Step>();
  const step = (name: string) => {
    let s = steps.get(name);
    if (!s) {
      s = { name, passed: 0, failures: [] };
      steps.set(name, s);
    }
    return s;
  };
  Object.values(TraceChecks).forEach((n) => n !== TraceChecks.consistency && step(n));
  if (pinnedNote) step(TraceChecks.consistency);
  const pass = (n: string) => step(n).passed++;
  const fail = (n: string, msg: string) => step(n).failures.push(msg);
  // Verification stops early only when the checkpoint fails: the checks
  // after it are then not reached. A check with nothing to check (the
  // version ids of a trace that references no version, the commitments of
  // a trace whose every span is erased) has passed.
  const result = (cp?: Checkpoint, note?: string): TraceVerification => {
    const list = [...steps.values()];
    if (!cp) for (const s of list) if (s.passed === 0 && s.failures.length === 0) s.skipped = "not reached";
    return { steps: list, ok: list.every((s) => s.failures.length === 0 && !s.skipped), checkpoint: cp, checkpointNote: note, entries: spans.length + trace.versions.length };
  };

  const spans = flatten(trace.roots);
  const maxIndex = [...spans.map((s) => s.index), ...trace.versions.map((v) => v.index)].reduce((a, b) => (a > b ? a : b), 0n);

  // 1. A checkpoint covering every entry, signed by the pinned key.
  let cpResp = await api.ledger.getCheckpoint({});
  if ((cpResp.checkpoint?.size ?? 0n) <= maxIndex) cpResp = await api.ledger.getCheckpoint({ fresh: true });
  const note = cpResp.checkpoint?.note ?? "";
  let cp: Checkpoint;
  try {
    cp = await openCheckpoint(note, key);
    const origin = `${key.name}/${tenant}`;
    if (cp.origin !== origin) throw new Error(`the checkpoint is for ${cp.origin}, not ${origin}`);
    if (cp.size <= maxIndex) throw new Error(`the checkpoint (size ${cp.size}) does not cover entry ${maxIndex}`);
    pass(TraceChecks.checkpoint);
  } catch (e) {
    fail(TraceChecks.checkpoint, (e as Error).message);
    return result();
  }

  // 2. Each entry: header, leaf, commitment, content, inclusion.
  const total = spans.length + trace.versions.length;
  let done = 0;
  const checkEntry = async (index: bigint, kind: number, what: string, expectLeaf: Uint8Array | undefined, shownAt: Timestamp | undefined, match: (h: Header) => string | null, content: (payload: Uint8Array, h: Header) => Promise<string | null> | string | null, erasedShown: boolean) => {
    const e = (await api.ledger.getEntry({ index })).entry;
    if (!e) throw new Error(`entry ${index}: no entry in the answer`);
    let h: Header;
    try {
      h = parseHeader(e.headerBytes);
      const why =
        h.index !== index ? `the header says index ${h.index}`
        : h.tenant !== tenant ? `the header says tenant ${h.tenant}`
        : h.kind !== kind ? `the header says kind ${h.kindName}`
        : shownAt && nanos(shownAt) !== h.appendedAtNanos ? `shown as appended at ${timeText(nanos(shownAt))}, the header says ${timeText(h.appendedAtNanos)}`
        : match(h);
      if (why) throw new Error(why);
      pass(TraceChecks.headers);
    } catch (err) {
      fail(TraceChecks.headers, `${what}: ${(err as Error).message}`);
      return null;
    }
    const leaf = await leafHash(e.headerBytes);
    if (expectLeaf && !equal(leaf, expectLeaf)) fail(TraceChecks.leaves, `${what}: shown with leaf hash ${toHex(expectLeaf).slice(0, 16)}, its header hashes to ${toHex(leaf).slice(0, 16)}`);
    else pass(TraceChecks.leaves);
    if (e.erased) {
      if (erasedShown) pass(TraceChecks.content);
      else fail(TraceChecks.content, `${what}: shown with content, but its payload is erased`);
    } else if (!(await checkCommitment(h, e.salt, e.payload))) {
      fail(TraceChecks.commitments, `${what}: the payload and salt do not open the header's commitment`);
    } else {
      pass(TraceChecks.commitments);
      const why = await content(e.payload, h);
      if (why) fail(TraceChecks.content, `${what}: ${why}`);
      else pass(TraceChecks.content);
    }
    const p = (await api.ledger.getInclusionProof({ index, treeSize: cp.size })).proof;
    try {
      if (!p || p.treeSize !== cp.size) throw new Error("no proof against the checkpoint's tree size");
      await verifyInclusion(index, cp.size, leaf, p.hashes, cp.root);
      pass(TraceChecks.inclusion);
    } catch (err) {
      fail(TraceChecks.inclusion, `${what}: ${(err as Error).message}`);
    }
    onProgress?.(++done, total);
    return h;
  };

  const refs: { what: string; id: string; kind: number }[] = [];
  // Entries are checked a few at a time: a trace of thousands of spans
  // would otherwise wait for twice as many round trips in a row.
  await eachLimit(spans, PARALLEL, async (n) => {
    const what = `span ${toHex(n.spanId)} (entry ${n.index})`;
    const h = await checkEntry(n.index, KIND_SPAN, what, n.leafHash, n.appendedAt,
      (h) => (!equal(h.traceId, trace.traceId) ? "the header names another trace" : !equal(h.spanId, n.spanId) ? "the header names another span" : h.subKind !== n.kind ? "the header names another span kind" : null),
      (payload) => {
        if (!n.span && n.decodeError) {
          // Nothing of it is shown: the payload must indeed not decode.
          try {
            fromBinary(SpanSchema, payload);
          } catch {
            return null;
          }
          return `shown as undecodable (${n.decodeError}), but its payload decodes`;
        }
        const recorded = fromBinary(SpanSchema, payload);
        if (!n.span) return "shown as erased, but its payload is there";
        return equals(SpanSchema, recorded, n.span) ? null : "what is shown differs from the recorded payload";
      },
      n.erased || (!n.span && !n.decodeError));
    if (h) h.refs.forEach((r, k) => !isZero(r) && refs.push({ what, id: toHex(r), kind: k + 1 }));
  });

  // 3. The versions shown: their entries, and their ids from their content.
  const verified = new Map<string, number>();
  await eachLimit(trace.versions, PARALLEL, async (v) => {
    const what = `${v.name} ${v.label} (entry ${v.index})`;
    const h = await checkEntry(v.index, KIND_VERSION, what, undefined, v.registeredAt,
      (h) => (toHex(h.refs[h.subKind - 1]) !== v.id ? "the header names another version id" : h.subKind !== v.kind ? "the header names another version kind" : null),
      async (payload, h) => {
        const rec = fromBinary(VersionSchema, payload);
        if (rec.name !== v.name || rec.label !== v.label || rec.kind !== v.kind || rec.mediaType !== v.mediaType || !equal(rec.content, v.content)) return "what is shown differs from the recorded payload";
        const id = await versionId(rec.kind, rec.name, rec.label, rec.mediaType, rec.content);
        if (id !== toHex(h.refs[h.subKind - 1])) {
          fail(TraceChecks.versions, `${what}: the content hashes to ${id.slice(0, 16)}, not to its id`);
          return null;
        }
        pass(TraceChecks.versions);
        return null;
      },
      false);
    if (h) verified.set(v.id, v.kind);
  });
  for (const r of refs) {
    if (verified.get(r.id) === r.kind) pass(TraceChecks.references);
    else fail(TraceChecks.references, `${r.what} references version ${r.id.slice(0, 16)}, which is not among the verified versions`);
  }

  // 4. The log only grew since the checkpoint the auditor pinned.
  if (pinnedNote) {
    try {
      const old = await openCheckpoint(pinnedNote, key);
      if (old.origin !== cp.origin) throw new Error(`the pinned checkpoint is for ${old.origin}`);
      if (old.size > cp.size) throw new Error(`the pinned checkpoint (size ${old.size}) is newer than the server's (size ${cp.size})`);
      if (old.size === cp.size) {
        if (!equal(old.root, cp.root)) throw new Error(`same size ${cp.size}, different roots: the log forked`);
      } else if (old.size > 0n) {
        const c = await api.ledger.getConsistencyProof({ oldSize: old.size, newSize: cp.size });
        await verifyConsistency(old.size, cp.size, old.root, cp.root, c.hashes);
      }
      pass(TraceChecks.consistency);
    } catch (e) {
      fail(TraceChecks.consistency, (e as Error).message);
    }
  }
  return result(cp, note);
}

export type { Version };
