// fetchTrace follows GetTrace's pages and fills the first page's tree.

import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { GetTraceResponseSchema, type GetTraceResponse, SpanNodeSchema } from "../src/gen/veritrace/v1/audit_pb";
import { SpanSchema } from "../src/gen/veritrace/v1/span_pb";
import { fetchTrace } from "../src/tracepages";

/** page returns a tree of a root (index 1) and two children (2, 3) with the content of those in given. */
function page(given: number[], next: string): GetTraceResponse {
  const node = (i: number, children = [] as ReturnType<typeof create<typeof SpanNodeSchema>>[]) =>
    create(SpanNodeSchema, {
      index: BigInt(i),
      children,
      ...(given.includes(i) ? { span: create(SpanSchema, { name: `span ${i}` }) } : { contentOmitted: true }),
    });
  return create(GetTraceResponseSchema, { roots: [node(1, [node(2), node(3)])], nextPageToken: next });
}

describe("fetchTrace", () => {
  it("follows next_page_token and fills every span's content", async () => {
    const pages: Record<string, GetTraceResponse> = { "": page([1], "p2"), p2: page([2], "p3"), p3: page([3], "") };
    const asked: string[] = [];
    const t = await fetchTrace(async (req) => {
      asked.push(req.pageToken ?? "");
      return pages[req.pageToken ?? ""];
    }, new Uint8Array(16));
    expect(asked).toEqual(["", "p2", "p3"]);
    expect(t.nextPageToken).toBe("");
    const names = [t.roots[0], ...t.roots[0].children].map((n) => [n.span?.name, n.contentOmitted]);
    expect(names).toEqual([["span 1", false], ["span 2", false], ["span 3", false]]);
  });
  it("stops a server that pages without end", async () => {
    await expect(fetchTrace(async () => page([1], "again"), new Uint8Array(16))).rejects.toThrow(/still have no content/);
  });
  it("shows erased a span erased between pages, with its tombstone", async () => {
    const second = page([], "");
    for (const n of [second.roots[0], ...second.roots[0].children]) {
      n.contentOmitted = false;
      n.erased = true;
      n.erasedByTombstone = 9n;
    }
    const pages: Record<string, GetTraceResponse> = { "": page([1], "p2"), p2: second };
    const t = await fetchTrace(async (req) => pages[req.pageToken ?? ""], new Uint8Array(16));
    const got = [t.roots[0], ...t.roots[0].children].map((n) => [n.erased, n.erasedByTombstone, n.contentOmitted, n.span]);
    expect(got).toEqual([
      [true, 9n, false, undefined],
      [true, 9n, false, undefined],
      [true, 9n, false, undefined],
    ]);
  });
  it("stops once the first page's spans have their content, though the trace grows", async () => {
    // Each later page names a page more (spans appended meanwhile).
    const asked: string[] = [];
    const t = await fetchTrace(async (req) => {
      const tok = req.pageToken ?? "";
      asked.push(tok);
      return tok === "" ? page([1], "p2") : page([1, 2, 3], tok + "+");
    }, new Uint8Array(16));
    expect(asked).toEqual(["", "p2"]);
    expect([t.roots[0], ...t.roots[0].children].map((n) => n.contentOmitted)).toEqual([false, false, false]);
  });
  it("leaves out an entry a later page leaves out of its tree (a resource entry)", async () => {
    const second = page([2, 3], "");
    second.roots = second.roots[0].children; // entry 1 is not in the tree
    const pages: Record<string, GetTraceResponse> = { "": page([], "p2"), p2: second };
    const t = await fetchTrace(async (req) => pages[req.pageToken ?? ""], new Uint8Array(16));
    expect(t.roots.map((n) => [n.index, n.span?.name])).toEqual([
      [2n, "span 2"],
      [3n, "span 3"],
    ]);
  });
});
