// GetTrace answers a large trace in pages (next_page_token): every page
// holds the whole tree and the content of some spans (content_omitted on
// the others). fetchTrace follows the pages and fills the first page's
// tree with what each later page knows better.

import type { GetTraceResponse, SpanNode } from "./gen/veritrace/v1/audit_pb";

type GetTrace = (req: { traceId: Uint8Array; pageToken?: string }) => Promise<GetTraceResponse>;

/** index returns the nodes of a tree by ledger index. */
function index(roots: SpanNode[]): Map<bigint, SpanNode> {
  const out = new Map<bigint, SpanNode>();
  const stack = [...roots];
  while (stack.length > 0) {
    const n = stack.pop()!;
    out.set(n.index, n);
    stack.push(...n.children);
  }
  return out;
}

/** without returns ns without the nodes in drop, each one's children in its place. */
function without(ns: SpanNode[], drop: Set<bigint>): SpanNode[] {
  const out: SpanNode[] = [];
  for (const n of ns) {
    n.children = without(n.children, drop);
    if (drop.has(n.index)) out.push(...n.children);
    else out.push(n);
  }
  return out;
}

/**
 * fetchTrace gets a trace's decision path, following its pages until every
 * span of the first page has its content. A later page knows better of what
 * it shows: a span erased since the first page is shown erased (its content
 * dropped), and an entry a later page leaves out of its tree is an OTLP
 * resource entry the first page could not tell from a span, left out too. A
 * span appended after the first page is not shown (the tree is the first
 * page's), so a trace still being written is read to the end of what the
 * first page showed. Each page gives the content of the span it starts at,
 * one the first page omitted while any is left: at most one page more than
 * the first page omitted spans.
 */
export async function fetchTrace(getTrace: GetTrace, traceId: Uint8Array): Promise<GetTraceResponse> {
  const first = await getTrace({ traceId });
  const nodes = index(first.roots);
  let omitted = 0;
  for (const n of nodes.values()) if (n.contentOmitted) omitted++;
  const most = omitted;
  const dropped = new Set<bigint>();
  let token = first.nextPageToken;
  for (let pages = 0; token !== "" && omitted > 0; pages++) {
    if (pages === most) {
      throw new Error(`GetTrace answered ${pages + 1} pages and ${omitted} spans of the first still have no content`);
    }
    const page = await getTrace({ traceId, pageToken: token });
    const shown = index(page.roots);
    for (const [i, m] of nodes) {
      const n = shown.get(i);
      const before = m.contentOmitted;
      if (!n) {
        dropped.add(i);
        nodes.delete(i);
      } else if (n.erased) {
        m.span = undefined;
        m.otlpJson = "";
        m.decodeError = "";
        m.contentOmitted = false;
        m.erased = true;
        m.erasedByTombstone = n.erasedByTombstone;
      } else if (m.contentOmitted && !n.contentOmitted) {
        m.span = n.span;
        m.otlpJson = n.otlpJson;
        m.decodeError = n.decodeError;
        m.contentOmitted = false;
      }
      if (before && (!n || !m.contentOmitted)) omitted--;
    }
    token = page.nextPageToken;
  }
  if (dropped.size > 0) first.roots = without(first.roots, dropped);
  first.nextPageToken = "";
  return first;
}
