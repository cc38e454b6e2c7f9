// GetTrace answers a large trace in pages (next_page_token): every page
// holds the whole tree and the content of some spans (content_omitted on
// the others). fetchTrace follows the pages and fills the first page's
// tree with the content each later page gives.

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

/**
 * fetchTrace gets a trace's decision path, following its pages until every
 * span's content is in hand. A span appended after the first page is not
 * shown (the tree is the first page's). Each page gives at least one span's
 * content, so there are at most as many pages as spans.
 */
export async function fetchTrace(getTrace: GetTrace, traceId: Uint8Array): Promise<GetTraceResponse> {
  const first = await getTrace({ traceId });
  const nodes = index(first.roots);
  let token = first.nextPageToken;
  for (let pages = 1; token !== ""; pages++) {
    if (pages > nodes.size) throw new Error(`GetTrace answered more pages than the trace has spans (${nodes.size})`);
    const page = await getTrace({ traceId, pageToken: token });
    for (const n of index(page.roots).values()) {
      const m = nodes.get(n.index);
      if (m && m.contentOmitted && !n.contentOmitted) {
        m.span = n.span;
        m.otlpJson = n.otlpJson;
        m.decodeError = n.decodeError;
        m.contentOmitted = false;
      }
    }
    token = page.nextPageToken;
  }
  first.nextPageToken = "";
  return first;
}
