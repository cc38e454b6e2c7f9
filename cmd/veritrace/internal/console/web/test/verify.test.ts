// Unit tests of the browser's verification code against golden vectors
// produced by the Go implementation (cmd/veritrace/internal/console/
// vectors_test.go writes testdata/).

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fromBase64, fromHex, sha256, toHex, utf8 } from "../src/verify/bytes";
import { decodePayload, parseEntry, reportOK, verifyBundle } from "../src/verify/bundle";
import { parseTime } from "../src/verify/strictjson";
import { listZip, readZipFile } from "../src/verify/zip";
import { commitment, parseHeader, versionId } from "../src/verify/header";
import { leafHash, treeHash, verifyConsistency, verifyInclusion } from "../src/verify/merkle";
import { openCheckpoint, openNote, parseCheckpointBody, parseVerifierKey } from "../src/verify/note";
import { reportSummary } from "../src/views/checks";
import { summarize } from "../src/verify/verdict";
import { checkOtlpSource, logEntrySpanId, resourceEntrySpanId } from "../src/verify/otlp";

const testdata = new URL("../testdata/", import.meta.url);
const vectors = JSON.parse(readFileSync(new URL("vectors.json", testdata), "utf8"));
const read = (name: string) => new Uint8Array(readFileSync(new URL("bundles/" + name, testdata)));
const readText = (name: string) => readFileSync(new URL("bundles/" + name, testdata), "utf8");

function flip(b: Uint8Array, i = 0): Uint8Array {
  const c = b.slice();
  c[i % c.length] ^= 1;
  return c;
}

describe("merkle", () => {
  const m = vectors.merkle;
  const leaves: Uint8Array[] = m.leaves.map(fromHex);
  it("hashes leaves as RFC 6962", async () => {
    for (let i = 0; i < leaves.length; i++) {
      expect(toHex(await leafHash(fromHex(m.leaf_data[i])))).toBe(m.leaves[i]);
    }
  });
  it("computes every tree root", async () => {
    for (let n = 0; n < m.roots.length; n++) {
      expect(toHex(await treeHash(leaves.slice(0, n)))).toBe(m.roots[n]);
    }
  });
  it("checks inclusion proofs, and refuses altered ones", async () => {
    for (const v of m.inclusion) {
      const root = fromHex(m.roots[v.size]);
      const proof = v.proof.map(fromHex);
      await verifyInclusion(BigInt(v.index), BigInt(v.size), leaves[v.index], proof, root);
      await expect(verifyInclusion(BigInt(v.index), BigInt(v.size), flip(leaves[v.index]), proof, root)).rejects.toThrow();
      if (proof.length > 0) {
        await expect(verifyInclusion(BigInt(v.index), BigInt(v.size), leaves[v.index], [flip(proof[0]), ...proof.slice(1)], root)).rejects.toThrow();
        await expect(verifyInclusion(BigInt(v.index), BigInt(v.size), leaves[v.index], proof.slice(1), root)).rejects.toThrow();
      }
      await expect(verifyInclusion(BigInt(v.index), BigInt(v.size), leaves[v.index], [...proof, root], root)).rejects.toThrow();
      if (v.size > 1) {
        const other = (v.index + 1) % v.size;
        await expect(verifyInclusion(BigInt(other), BigInt(v.size), leaves[v.index], proof, root)).rejects.toThrow();
      }
    }
    await expect(verifyInclusion(5n, 5n, leaves[0], [], fromHex(m.roots[5]))).rejects.toThrow(/not below/);
  });
  it("checks consistency proofs, and refuses altered ones", async () => {
    for (const v of m.consistency) {
      const oldRoot = fromHex(m.roots[v.old]);
      const newRoot = fromHex(m.roots[v.new]);
      const proof = v.proof.map(fromHex);
      await verifyConsistency(BigInt(v.old), BigInt(v.new), oldRoot, newRoot, proof);
      await expect(verifyConsistency(BigInt(v.old), BigInt(v.new), flip(oldRoot), newRoot, proof)).rejects.toThrow();
      await expect(verifyConsistency(BigInt(v.old), BigInt(v.new), oldRoot, flip(newRoot), proof)).rejects.toThrow();
      await expect(verifyConsistency(BigInt(v.old), BigInt(v.new), oldRoot, newRoot, [flip(proof[0]), ...proof.slice(1)])).rejects.toThrow();
      await expect(verifyConsistency(BigInt(v.old), BigInt(v.new), oldRoot, newRoot, proof.slice(0, -1))).rejects.toThrow();
    }
    const r = fromHex(m.roots[4]);
    await verifyConsistency(4n, 4n, r, r, []);
    await expect(verifyConsistency(4n, 4n, r, flip(r), [])).rejects.toThrow();
    await expect(verifyConsistency(5n, 4n, r, r, [])).rejects.toThrow();
  });
});

describe("signed notes", () => {
  const n = vectors.notes;
  it("parses the verifier key and refuses bad ones", async () => {
    const k = await parseVerifierKey(n.key);
    expect(k.name).toBe(n.key.split("+")[0]);
    expect(k.publicKey.length).toBe(32);
    for (const bad of n.bad_keys) await expect(parseVerifierKey(bad)).rejects.toThrow();
  });
  it("opens valid notes with the key", async () => {
    const k = await parseVerifierKey(n.key);
    for (const v of n.valid) expect((await openNote(v.msg, k)).text).toBe(v.text);
    const other = await parseVerifierKey(n.other_key);
    await expect(openNote(n.valid[0].msg, other)).rejects.toThrow(/no signature/);
  });
  it("refuses every invalid note", async () => {
    const k = await parseVerifierKey(n.key);
    for (const v of n.invalid) await expect(openNote(v.msg, k), v.why).rejects.toThrow();
  });
  it("opens signed checkpoints and refuses bad bodies", async () => {
    const k = await parseVerifierKey(n.key);
    for (const c of vectors.Checkpoints) {
      const cp = await openCheckpoint(c.note, k);
      expect(cp.origin).toBe(c.origin);
      expect(cp.size).toBe(BigInt(c.size));
      expect(toHex(cp.root)).toBe(c.root);
    }
    for (const b of vectors.bad_checkpoint_bodies) expect(() => parseCheckpointBody(b.msg), b.why).toThrow();
  });
});

describe("entry format", () => {
  const f = vectors.format;
  it("parses canonical headers as Go does", async () => {
    for (const v of f.headers) {
      const b = fromHex(v.bytes);
      const h = parseHeader(b);
      expect({
        kind: h.kind, sub_kind: h.subKind, tenant: h.tenant, index: h.index.toString(), appended_at_nanos: h.appendedAtNanos.toString(),
        trace_id: toHex(h.traceId), span_id: toHex(h.spanId), parent_span_id: toHex(h.parentSpanId), refs: h.refs.map(toHex),
        retention_class: h.retentionClass, prev_leaf_hash: toHex(h.prevLeafHash), commitment: toHex(h.commitment),
      }).toEqual({
        kind: v.kind, sub_kind: v.sub_kind, tenant: v.tenant, index: v.index, appended_at_nanos: v.appended_at_nanos,
        trace_id: v.trace_id, span_id: v.span_id, parent_span_id: v.parent_span_id, refs: v.refs,
        retention_class: v.retention_class, prev_leaf_hash: v.prev_leaf_hash, commitment: v.commitment,
      });
      expect(toHex(await leafHash(b))).toBe(v.leaf_hash);
    }
  });
  it("refuses every malformed header", () => {
    for (const v of f.bad_headers) expect(() => parseHeader(fromHex(v.msg)), v.why).toThrow(/malformed header/);
  });
  it("computes commitments and version ids", async () => {
    for (const c of f.commitments) expect(toHex(await commitment(fromHex(c.Salt), fromHex(c.Payload)))).toBe(c.Commitment);
    for (const v of f.version_ids) expect(await versionId(v.kind, v.name, v.label, v.media_type, fromHex(v.content))).toBe(v.id);
  });
});

describe("strict JSON", () => {
  it("reads entry files as the Go verifier does", () => {
    for (const v of vectors.entry_files) {
      let ok = true;
      try {
        parseEntry(v.text);
      } catch {
        ok = false;
      }
      expect(ok, v.text).toBe(v.ok);
    }
  });
  it("reads times as the Go verifier does", () => {
    for (const v of vectors.times) {
      if (v.ok) expect(parseTime(v.text).toString(), v.text).toBe(v.nanos);
      else expect(() => parseTime(v.text), v.text).toThrow();
    }
  });
});

describe("OTLP sources", () => {
  it("derives span ids as Go does (audit/bundle ExampleResourceEntrySpanID)", async () => {
    const digest = await sha256(utf8.encode("resource and scope"));
    expect(toHex(await resourceEntrySpanId(new Uint8Array(16).fill(0x11), digest))).toBe("6e458c9821140056");
    expect(toHex(await logEntrySpanId(digest, utf8.encode("log record")))).toBe("fccf7328dbe92dd7");
  });
  it("refuses a span whose source names other ids, and a source of two forms", async () => {
    const trace = new Uint8Array(16).fill(1);
    const span = new Uint8Array([0x0a, 16, ...trace, 0x12, 8, 2, 2, 2, 2, 2, 2, 2, 2]); // trace_id, span_id
    const h = { traceId: trace, spanId: new Uint8Array(8).fill(2), parentSpanId: new Uint8Array(8), subKind: 1 };
    const ref = new Uint8Array(32);
    expect(await checkOtlpSource(h, { span, resourceScopeSha256: ref }, { passed: false })).toBe("");
    expect(await checkOtlpSource({ ...h, spanId: new Uint8Array(8).fill(3) }, { span, resourceScopeSha256: ref }, { passed: false })).toMatch(/not the header's/);
    expect(await checkOtlpSource(h, { span, resourceScopeSha256: ref, resourceScope: new Uint8Array([0x12, 0]) }, { passed: false })).toMatch(/more than one form/);
    expect(await checkOtlpSource(h, { span: new Uint8Array([0x0c]), resourceScopeSha256: ref }, { passed: false })).toMatch(/does not parse/);
  });
});

describe("decoded forms", () => {
  it("writes the canonical proto JSON of every payload byte for byte as Go does, and refuses the same ones", () => {
    expect(vectors.decoded.length).toBeGreaterThan(100);
    for (const [i, v] of vectors.decoded.entries()) {
      const got = decodePayload(v.kind, fromBase64(v.payload));
      if (v.undecodable) {
        expect(got.problem, `vector ${i}: Go: ${v.undecodable}`).not.toBe("");
      } else {
        expect(got.problem, `vector ${i}`).toBe("");
        expect(got.decoded, `vector ${i}`).toBe(v.decoded);
      }
    }
  });
});

describe("bundles", () => {
  const cases = JSON.parse(readFileSync(new URL("bundles.json", testdata), "utf8"));
  for (const c of cases) {
    it(`gives the Go verifier's verdict: ${c.name}`, async () => {
      const key = await parseVerifierKey(readText(c.key));
      const rep = await verifyBundle(read(c.file), key, c.pinned ? readText(c.pinned) : undefined);
      // The notes too, word for word: the console's report states what veritrace verify states.
      const got = rep.checks.map((x) => ({ name: x.name, passed: x.passed, failed: x.failed, skipped: x.skipped !== "", ...(x.notes.length ? { notes: x.notes } : {}) }));
      expect(got).toEqual(c.checks);
      expect(reportOK(rep)).toBe(c.ok);
      // The first line names the same figures, or the same check the manifest failed
      // (a failure's own words may differ between the two parsers).
      const summary = reportSummary(rep);
      const cut = (s: string) => s.replace(/^b/, "B").replace(/(could not be trusted \([^:]+:).*$/, "$1");
      expect(cut(summary)).toBe(cut(c.summary));
      // The last line: the same checks failed and not checked, for the same reason.
      expect(reportOK(rep) ? "VERIFIED: every check passed" : `NOT VERIFIED: ${summarize(rep.checks)}`).toBe(c.verdict);
    });
  }

  it("never throws on a damaged bundle and never verifies one", async () => {
    const key = await parseVerifierKey(readText("log.pub"));
    const valid = read("valid.zip");
    const contents = async (b: Uint8Array) => {
      const out: Record<string, string> = {};
      for (const f of listZip(b)) out[f.name] = toHex(await readZipFile(b, f, 512 << 20));
      return out;
    };
    const original = await contents(valid);
    let passed = 0;
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 120; i++) {
      const b = valid.slice();
      const edits = 1 + rand(4);
      for (let j = 0; j < edits; j++) b[rand(b.length)] = rand(256);
      const cut = rand(5) === 0 ? b.subarray(0, rand(b.length)) : b;
      const rep = await verifyBundle(cut, key);
      if (reportOK(rep)) {
        // Only a change the content does not see (a zip timestamp, say) may pass.
        expect(await contents(cut)).toEqual(original);
        passed++;
      }
    }
    expect(passed).toBeLessThan(120);
  }, 120_000);

  it("decodes base64 strictly where Go does", () => {
    expect(() => fromBase64("QQ==")).not.toThrow();
    expect(() => fromBase64("QR==")).toThrow();
    expect(() => fromBase64("QR==", false)).not.toThrow();
    expect(() => fromBase64("QQ=")).toThrow();
  });
});
