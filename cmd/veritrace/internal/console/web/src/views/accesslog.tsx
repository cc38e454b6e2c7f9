// The tenant's access log: who read, exported, erased, or was refused.
// It is itself in the ledger; reading it is recorded too.

import { useEffect, useState } from "preact/hooks";
import { useCtx } from "../context";
import { AccessOutcome } from "../gen/veritrace/v1/access_pb";
import type { AccessEntry } from "../gen/veritrace/v1/ledger_pb";
import { Role } from "../gen/veritrace/v1/admin_pb";
import { enumName, refusalSummary, time } from "../format";
import { Badge, ErrorBox, Id, Notice, Page, Panel, useAction } from "../ui";

export function AccessLogView() {
  const { api, tenant } = useCtx();
  const [from, setFrom] = useState<bigint[]>([0n]); // start index of each page
  const [page, setPage] = useState(0);
  const [entries, setEntries] = useState<AccessEntry[] | null>(null);
  const [next, setNext] = useState<bigint>(0n);
  const [outcome, setOutcome] = useState<string>("");
  const load = useAction(async (start: bigint) => {
    const r = await api.ledger.listAccessLog({ fromIndex: start, pageSize: 100 });
    setEntries(r.entries);
    setNext(r.nextIndex);
  });
  useEffect(() => {
    load.run(from[page]);
  }, [page]);
  const shown = (entries ?? []).filter((e) => !outcome || String(e.record?.outcome) === outcome);
  return (
    <Page title={`Access log · ${tenant}`}>
      <Panel testid="access-log">
        <p class="muted">
          Every read of payloads, every export, every retention, hold and erasure call and every refused request, appended to the ledger
          before the answer was sent; refusals after the first of a burst are counted in a summary a minute, naming the keys and targets
          refused. Your reading this page is recorded too.
        </p>
        <div class="toolbar">
          <label>
            outcome{" "}
            <select value={outcome} onChange={(e) => setOutcome(e.currentTarget.value)} data-testid="outcome-filter">
              <option value="">all</option>
              <option value={String(AccessOutcome.ALLOWED)}>allowed</option>
              <option value={String(AccessOutcome.DENIED)}>denied</option>
              <option value={String(AccessOutcome.FAILED)}>failed</option>
            </select>
          </label>
          <button onClick={() => load.run(from[page])} disabled={load.busy}>
            Refresh
          </button>
        </div>
        <ErrorBox error={load.error} />
        {entries && shown.length === 0 && <Notice>No entries on this page.</Notice>}
        {shown.length > 0 && (
          <table class="grid">
            <thead>
              <tr>
                <th class="num">Entry</th>
                <th>Time (UTC)</th>
                <th>Outcome</th>
                <th>Role</th>
                <th>Key</th>
                <th>Procedure</th>
                <th>Target</th>
                <th>Why</th>
                <th>Peer</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((e) => {
                const r = e.record;
                if (!r) {
                  // An erased (expired) record, or one that cannot be decoded: shown as such.
                  return (
                    <tr data-testid="access-row">
                      <td class="num">{e.index.toString()}</td>
                      <td colSpan={8} class="wrap">
                        {e.decodeError ? <Badge tone="warn">undecodable</Badge> : <Badge tone="muted">erased</Badge>} {e.decodeError}
                      </td>
                    </tr>
                  );
                }
                return (
                  <tr data-testid="access-row">
                    <td class="num">{e.index.toString()}</td>
                    <td>{time(r.time)}</td>
                    <td>
                      <Badge tone={r.outcome === AccessOutcome.ALLOWED ? "ok" : r.outcome === AccessOutcome.DENIED ? "bad" : "warn"}>{enumName(AccessOutcome[r.outcome], "")}</Badge>
                    </td>
                    <td>{enumName(Role[r.role], "")}</td>
                    <td>{r.keyId && <Id value={r.keyId} n={16} />}</td>
                    <td>
                      <code>{r.procedure.replace("/veritrace.v1.", "")}</code>
                    </td>
                    <td class="wrap">{r.summary ? <span data-testid="refusal-summary">{refusalSummary(r.summary)}</span> : r.target}</td>
                    <td class="wrap">{r.code ? `${r.code}: ${r.reason}` : r.reason}</td>
                    <td>{r.peer}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
        <div class="pager">
          <button disabled={page === 0 || load.busy} onClick={() => setPage(page - 1)}>
            ← Earlier
          </button>
          <span>from entry {from[page].toString()}</span>
          <button
            disabled={!next || load.busy}
            onClick={() => {
              setFrom([...from.slice(0, page + 1), next]);
              setPage(page + 1);
            }}
          >
            Later →
          </button>
        </div>
      </Panel>
    </Page>
  );
}
