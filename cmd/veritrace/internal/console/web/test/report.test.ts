// Component tests of the bundle report: what the console shows of a
// verifier's report, rendered to text without a browser (the function
// components are called and their output walked).

import { readFileSync } from "node:fs";
import type { VNode } from "preact";
import { describe, expect, it } from "vitest";
import { verifyBundle } from "../src/verify/bundle";
import { parseVerifierKey } from "../src/verify/note";
import { CheckList, ReportSummary } from "../src/views/checks";

const testdata = new URL("../testdata/", import.meta.url);
const read = (name: string) => new Uint8Array(readFileSync(new URL("bundles/" + name, testdata)));
const readText = (name: string) => readFileSync(new URL("bundles/" + name, testdata), "utf8");

/** The text a rendered tree shows, one string per element's own text, function components called. */
export function textOf(node: unknown): string {
  if (node === null || node === undefined || typeof node === "boolean") return "";
  if (typeof node === "string" || typeof node === "number" || typeof node === "bigint") return String(node);
  if (Array.isArray(node)) return node.map(textOf).join("");
  const v = node as VNode<{ children?: unknown }>;
  if (typeof v.type === "function") return textOf((v.type as (p: unknown) => unknown)(v.props));
  return textOf(v.props?.children);
}

describe("the bundle report", () => {
  it("shows every note of every check, worded as veritrace verify words it", async () => {
    const key = await parseVerifierKey(readText("log.pub"));
    // A trace bundle: not a time range.
    const rep = await verifyBundle(read("valid.zip"), key);
    const shown = textOf(CheckList({ checks: rep.checks }));
    expect(shown).toContain("note: the selector is not a time range: the bundle does not show that no other trace matches it");
    // An erased span: the selector's note.
    const erased = await verifyBundle(read("erased.zip"), key);
    const notes = erased.checks.flatMap((c) => c.notes);
    expect(notes.length).toBeGreaterThan(0);
    const text = textOf(CheckList({ checks: erased.checks }));
    for (const n of notes) expect(text).toContain("note: " + n);
  });

  it("says a tampered manifest could not be trusted, and why, without figures it did not establish", async () => {
    const key = await parseVerifierKey(readText("log.pub"));
    // The manifest edited, not signed anew; and one signed anew that breaks the format's rules.
    for (const file of ["manifest-changed.zip", "manifest-member-upper-case-resigned.zip"]) {
      const rep = await verifyBundle(read(file), key);
      const shown = textOf(ReportSummary({ report: rep }));
      expect(shown).toContain("its manifest could not be trusted");
      expect(shown).toContain(rep.checks.find((c) => c.failures.length > 0)!.failures[0]);
      expect(shown).not.toMatch(/entries|tree size|unknown log/);
    }
    // A valid bundle: its figures.
    const ok = textOf(ReportSummary({ report: await verifyBundle(read("valid.zip"), key) }));
    expect(ok).toMatch(/^Bundle of \d+ entries \(\d+ traces?\) from .+ at tree size \d+/);
  });
});
