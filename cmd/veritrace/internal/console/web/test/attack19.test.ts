// Attack 19: bundles whose zip container the Go verifier (archive/zip) and
// this one (src/verify/zip.ts) read differently. They are crafted, and
// the Go verdicts recorded, by TestAttack19ZipContainers in
// audit/bundle/attack19_test.go (ATTACK19_WRITE=1); the console must give
// the same verdict on each.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { reportOK, verifyBundle } from "../src/verify/bundle";
import { parseVerifierKey } from "../src/verify/note";

const dir = new URL("../testdata/attack19/", import.meta.url);
const cases: { name: string; file: string; ok: boolean; failed: string[] }[] = JSON.parse(readFileSync(new URL("cases.json", dir), "utf8"));

describe("attack 19: zip containers", () => {
  for (const c of cases) {
    it(`gives the Go verifier's verdict (ok: ${c.ok}): ${c.name}`, async () => {
      const key = await parseVerifierKey(readFileSync(new URL("synth.pub", dir), "utf8"));
      const rep = await verifyBundle(new Uint8Array(readFileSync(new URL(c.file, dir))), key);
      const failed = rep.checks.filter((x) => x.failed > 0 || x.skipped !== "").map((x) => `${x.name}: ${x.failures?.[0] ?? x.skipped ?? ""}`);
      expect(reportOK(rep), `the console's failures: ${failed.join("; ") || "none"}`).toBe(c.ok);
    });
  }
});
