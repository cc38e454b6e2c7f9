// Bundles whose zip container the Go verifier (archive/zip and
// audit/bundle/zipcheck.go) and this one (src/verify/zip.ts) once read
// differently (review attack19). They are crafted, and the Go verdicts
// recorded, by TestZipQuirks in
// audit/bundle/zipquirks_test.go (ZIPQUIRKS_WRITE=1); the console must give
// the same verdict on each.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseEntry, reportOK, verifyBundle } from "../src/verify/bundle";
import { fromBase64, utf8Decoder } from "../src/verify/bytes";
import { parseVerifierKey } from "../src/verify/note";

const dir = new URL("../testdata/zipquirks/", import.meta.url);
const cases: { name: string; file: string; ok: boolean; failed: string[] }[] = JSON.parse(readFileSync(new URL("cases.json", dir), "utf8"));

describe("zip containers read as the Go verifier reads them", () => {
  for (const c of cases) {
    it(`gives the Go verifier's verdict (ok: ${c.ok}): ${c.name}`, async () => {
      const key = await parseVerifierKey(readFileSync(new URL("synth.pub", dir), "utf8"));
      const rep = await verifyBundle(new Uint8Array(readFileSync(new URL(c.file, dir))), key);
      const failed = rep.checks.filter((x) => x.failed > 0 || x.skipped !== "").map((x) => `${x.name}: ${x.failures?.[0] ?? x.skipped ?? ""}`);
      expect(reportOK(rep), `the console's failures: ${failed.join("; ") || "none"}`).toBe(c.ok);
    });
  }
});

// Entry files for the JSON scanning of vfy50, with the Go parser's verdict
// (TestEntryJSONVectors).
describe("entry files parsed as the Go verifier parses them", () => {
  const entries: { name: string; file: string; ok: boolean; error?: string }[] = JSON.parse(readFileSync(new URL("entries.json", dir), "utf8"));
  for (const c of entries) {
    it(`parses as the Go verifier does (ok: ${c.ok}): ${c.name}`, () => {
      let err = "";
      try {
        parseEntry(utf8Decoder.decode(fromBase64(c.file)));
      } catch (e) {
        err = String(e);
      }
      expect(err === "", `the console: ${err || "accepted"}; Go: ${c.error ?? "accepted"}`).toBe(c.ok);
    });
  }
});
