// Evidence export: streams AuditService.ExportBundle into memory and hands
// the zip to the browser to save. The last bundle exported in this tab can
// be opened on the verify page without saving and reloading it.

import { create } from "@bufbuild/protobuf";
import type { Api } from "./api";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { useState } from "preact/hooks";
import { TraceQuerySchema } from "./gen/veritrace/v1/audit_pb";

export type QueryInit = MessageInitShape<typeof TraceQuerySchema>;
import { forgetOnSignOut, pins } from "./session";
import { concat } from "./verify/bytes";
import { parseCheckpointBody } from "./verify/note";
import { useCtx } from "./context";
import { bytesSize } from "./format";
import { linkClick } from "./router";
import { ErrorBox, Notice, Panel, download, useAction } from "./ui";

export let lastBundle: { name: string; bytes: Uint8Array } | null = null;
forgetOnSignOut(() => (lastBundle = null));

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

export async function exportBundle(api: Api, query: QueryInit, knownTreeSize: bigint): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const msg of api.audit.exportBundle({ selector: create(TraceQuerySchema, query), knownTreeSize })) chunks.push(msg.chunk);
  return concat(...chunks);
}

export function rememberBundle(name: string, bytes: Uint8Array) {
  lastBundle = { name, bytes };
}

export function bundleName(tenant: string, what: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  return `evidence-${tenant}-${what.replace(/[^a-z0-9-]+/gi, "-").slice(0, 40)}-${stamp}Z.zip`;
}

/**
 * Exports the traces a query selects as a bundle, saves it, and offers to
 * verify it. The bundle carries a consistency proof from the checkpoint
 * pinned for the tenant's log, if any.
 */
export function ExportPanel(props: { query: QueryInit; what: string; text: string; label: string; testid: string }) {
  const { api, tenant } = useCtx();
  const [done, setDone] = useState("");
  const run = useAction(async () => {
    setDone("");
    const cp = await api.ledger.getCheckpoint({});
    const bytes = await exportBundle(api, props.query, pinnedSize(cp.checkpoint?.origin ?? ""));
    const name = bundleName(tenant, props.what);
    rememberBundle(name, bytes);
    download(bytes, name, "application/zip");
    setDone(`${name} (${bytesSize(bytes.length)})`);
  });
  return (
    <Panel title="Evidence">
      <p class="muted">{props.text} The export is recorded in the access log.</p>
      <button onClick={() => run.run()} disabled={run.busy} data-testid={props.testid}>
        {run.busy ? "Exporting…" : props.label}
      </button>
      {done && (
        <Notice kind="ok" testid="exported">
          Saved {done}.{" "}
          <a href="/ui/verify" onClick={linkClick("/verify")}>
            Verify it now
          </a>
        </Notice>
      )}
      <ErrorBox error={run.error} />
    </Panel>
  );
}
