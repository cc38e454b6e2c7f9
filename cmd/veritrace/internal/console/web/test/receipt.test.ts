// The browser's receipt check against the Go check's verdicts on the same
// receipts (cmd/veritrace/internal/console/receipt_vectors_test.go writes
// testdata/receipts.json): the same check names, the same verdicts.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fromHex } from "../src/verify/bytes";
import { parseVerifierKey } from "../src/verify/note";
import { checkReceipt, parseReceiptFile, receiptVerdict } from "../src/verify/receipt";

const vectors = JSON.parse(readFileSync(new URL("../testdata/receipts.json", import.meta.url), "utf8"));

describe("erasure receipts", () => {
  for (const c of vectors.cases) {
    it(`${c.name}: as the Go check says`, async () => {
      const key = await parseVerifierKey(vectors.key);
      const { receiptJson, signature } = parseReceiptFile(c.file);
      const res = await checkReceipt(receiptJson, signature, key, async (index) => {
        const p = c.parts[index.toString()];
        if (!p) throw new Error(`no entry ${index}`);
        return { header: fromHex(p.header), payload: fromHex(p.payload), salt: fromHex(p.salt), proof: p.proof.map(fromHex) };
      });
      const got = Object.fromEntries(res.steps.map((s) => [s.name, s.skipped ? "skipped" : s.failures.length ? "failed" : "ok"]));
      expect(got).toEqual(c.checks);
      expect(res.ok).toBe(c.ok);
      expect(receiptVerdict(res)).toBe(c.verdict);
    });
    it(`${c.name}: without the parts, the verdict the Go check gives`, async () => {
      const key = await parseVerifierKey(vectors.key);
      const { receiptJson, signature } = parseReceiptFile(c.file);
      expect(receiptVerdict(await checkReceipt(receiptJson, signature, key))).toBe(c.offline);
    });
  }
  it("reads the console's download of a receipt as the CLI's file", async () => {
    const c = vectors.cases[0];
    const nl = c.file.indexOf("\n");
    const doc = JSON.stringify({ receipt: JSON.parse(c.file.slice(0, nl)), receipt_json: c.file.slice(0, nl), signature: c.file.slice(nl + 1) }, null, 2);
    expect(parseReceiptFile(doc)).toEqual(parseReceiptFile(c.file));
  });
  it("checks only the signature and checkpoint without a part source, and says so", async () => {
    const key = await parseVerifierKey(vectors.key);
    const { receiptJson, signature } = parseReceiptFile(vectors.cases[1].file);
    const res = await checkReceipt(receiptJson, signature, key);
    expect(res.ok).toBe(true);
    expect(res.partsChecked).toBe(false);
    expect(res.steps.map((s) => s.skipped ?? "ran")).toEqual(["ran", "ran", expect.stringContaining("needs the tombstone entries"), expect.stringContaining("needs the tombstone entries")]);
  });
});
