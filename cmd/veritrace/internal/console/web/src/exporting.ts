// Evidence export: streams AuditService.ExportBundle into memory and hands
// the zip to the browser to save. The last bundle exported in this tab can
// be opened on the verify page without saving and reloading it.

import { create } from "@bufbuild/protobuf";
import type { Api } from "./api";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { TraceQuerySchema } from "./gen/veritrace/v1/audit_pb";

export type QueryInit = MessageInitShape<typeof TraceQuerySchema>;
import { pins } from "./session";
import { parseCheckpointBody } from "./verify/note";

export let lastBundle: { name: string; bytes: Uint8Array } | null = null;

/** The size of the checkpoint pinned for this tenant's log, if any, so that the bundle carries a consistency proof from it. */
export function pinnedSize(origin: string): bigint {
  const note = pins.checkpoint(origin);
  if (!note) return 0n;
  try {
    return parseCheckpointBody(note.slice(0, note.indexOf("\n\n") + 1)).size;
  } catch {
    return 0n;
  }
}

export async function exportBundle(api: Api, query: QueryInit, knownTreeSize: bigint, onProgress?: (bytes: number) => void): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const msg of api.audit.exportBundle({ selector: create(TraceQuerySchema, query), knownTreeSize })) {
    chunks.push(msg.chunk);
    n += msg.chunk.length;
    onProgress?.(n);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export function rememberBundle(name: string, bytes: Uint8Array) {
  lastBundle = { name, bytes };
}

export function bundleName(tenant: string, what: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  return `evidence-${tenant}-${what.replace(/[^a-z0-9-]+/gi, "-").slice(0, 40)}-${stamp}Z.zip`;
}
