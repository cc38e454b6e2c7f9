// Erasure requests: a dry run first, then the erasure itself (crypto-
// shredding and a tombstone), the signed receipt to download and check,
// and the history of past requests.

import { useEffect, useState } from "preact/hooks";
import { useCtx } from "../context";
import type { Erasure } from "../gen/veritrace/v1/retention_pb";
import { time } from "../format";
import { pins } from "../session";
import type { Api } from "../api";
import { fromHex } from "../verify/bytes";
import { parseVerifierKey } from "../verify/note";
import { checkReceipt, receiptVerdict, serverParts, type ReceiptVerification } from "../verify/receipt";
import { CheckList } from "./checks";
import { Badge, ErrorBox, Field, KV, Notice, Page, Panel, Pre, download, useAction } from "../ui";

type Selector = "subject" | "session" | "traces";

/** Past requests shown a page. */
const HISTORY_PAGE = 100;

function newRequestId(): string {
  const r = new Uint8Array(4);
  crypto.getRandomValues(r);
  return "dsr-" + new Date().toISOString().slice(0, 10) + "-" + [...r].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks an erasure receipt in this browser with the pinned log key, as
 * `veritrace verify-receipt --addr` does: the signature and checkpoint,
 * then each tombstone part (GetEntry and an inclusion proof into the
 * receipt's checkpoint) and the counts.
 */
async function verifyReceipt(api: Api, er: Erasure): Promise<ReceiptVerification> {
  const keyText = pins.logKey();
  if (!keyText) throw new Error("Pin the log's public key (on a trace's verify panel) to check receipts in the browser.");
  const key = await parseVerifierKey(keyText);
  return checkReceipt(er.receipt, er.receiptSignature, key, serverParts(api.ledger));
}

export function ErasureView() {
  const { api, tenant } = useCtx();
  const [selector, setSelector] = useState<Selector>("subject");
  const [value, setValue] = useState("");
  const [legalBasis, setLegalBasis] = useState("GDPR Art. 17(1)(a)");
  const [ticket, setTicket] = useState("");
  const [reason, setReason] = useState("");
  const [requestId, setRequestId] = useState(newRequestId());
  const [dry, setDry] = useState<{ er: Erasure; params: string } | null>(null);
  const [confirm, setConfirm] = useState(false);
  const [done, setDone] = useState<Erasure | null>(null);
  const [history, setHistory] = useState<Erasure[] | null>(null);
  const [pages, setPages] = useState<string[]>([""]); // page tokens of past requests; pages[i] starts page i
  const [page, setPage] = useState(0);
  const params = JSON.stringify([selector, value.trim(), legalBasis.trim(), ticket.trim(), reason.trim(), requestId]);
  const request = (dryRun: boolean) => {
    const v = value.trim();
    const traceIds = selector === "traces" ? v.split(/[\s,]+/).filter(Boolean).map((t) => {
      if (!/^[0-9a-f]{32}$/.test(t)) throw new Error(`trace id ${t}: 32 lowercase hex digits`);
      return fromHex(t);
    }) : [];
    return {
      requestId, dryRun, legalBasis: legalBasis.trim(), ticket: ticket.trim(), reason: reason.trim(),
      subjectId: selector === "subject" ? v : "", sessionId: selector === "session" ? v : "", traceIds,
    };
  };
  // Past requests, newest first, a page at a time.
  const loadHistory = useAction(async (at: number = page) => {
    const r = await api.retention.listErasures({ pageSize: HISTORY_PAGE, pageToken: pages[at] ?? "" });
    setHistory(r.erasures);
    setPage(at);
    setPages((ps) => {
      const next = ps.slice(0, at + 1);
      if (r.nextPageToken) next[at + 1] = r.nextPageToken;
      return next;
    });
  });
  // The list carries no receipts: fetch the request's own.
  const fetchReceipt = useAction(async (requestId: string) => downloadReceipt((await api.retention.getErasure({ requestId, pageSize: 1 })).erasure!));
  const [past, setPast] = useState<Erasure | null>(null);
  const openPast = useAction(async (requestId: string) => {
    setPast(null); // a fresh panel: no earlier check result stays on screen
    setPast((await api.retention.getErasure({ requestId, pageSize: 1 })).erasure!);
  });
  useEffect(() => {
    loadHistory.run(0);
  }, []);
  const dryRun = useAction(async () => {
    setDone(null);
    setConfirm(false);
    const r = await api.retention.erase(request(true));
    setDry({ er: r.erasure!, params });
  });
  const execute = useAction(async () => {
    const r = await api.retention.erase(request(false));
    setDone(r.erasure!);
    setDry(null);
    setConfirm(false);
    setRequestId(newRequestId());
    await loadHistory.run(0);
  });
  const dryValid = dry && dry.params === params;
  return (
    <Page title={`Erasure · ${tenant}`}>
      <form
        class="panel filters"
        onSubmit={(e) => {
          e.preventDefault();
          dryRun.run();
        }}
        data-testid="erasure-form"
      >
        <h2 class="full">New erasure request</h2>
        <Field label="Erase">
          <select value={selector} onChange={(e) => setSelector(e.currentTarget.value as Selector)} name="selector">
            <option value="subject">a data subject's payloads</option>
            <option value="session">a session's payloads</option>
            <option value="traces">traces' payloads</option>
          </select>
        </Field>
        <Field label={selector === "traces" ? "Trace ids (comma or space separated)" : selector === "subject" ? "Subject id" : "Session id"} wide={selector === "traces"}>
          <input value={value} onInput={(e) => setValue(e.currentTarget.value)} name="erase-value" required />
        </Field>
        <Field label="Legal basis">
          <input value={legalBasis} onInput={(e) => setLegalBasis(e.currentTarget.value)} name="legal-basis" required />
        </Field>
        <Field label="Ticket (optional)">
          <input value={ticket} onInput={(e) => setTicket(e.currentTarget.value)} name="ticket" placeholder="DSR-118" />
        </Field>
        <Field label="Reason" wide>
          <input value={reason} onInput={(e) => setReason(e.currentTarget.value)} name="erase-reason" required placeholder="subject request" />
        </Field>
        <Field label="Request id" hint="makes the request idempotent: sending it again returns the same outcome">
          <input value={requestId} onInput={(e) => setRequestId(e.currentTarget.value)} name="request-id" required />
        </Field>
        <div class="buttons">
          <button type="submit" class="primary" disabled={dryRun.busy} data-testid="dry-run">
            {dryRun.busy ? "Running…" : "Dry run"}
          </button>
        </div>
      </form>
      <ErrorBox error={dryRun.error} />
      {dry && (
        <Panel title="Dry run" testid="dry-run-result">
          <Notice kind={dry.er.erasedCount ? "warn" : "info"}>
            Would erase {dry.er.erasedCount.toString()} entr{dry.er.erasedCount === 1n ? "y" : "ies"}
            {dry.er.heldCount ? `; ${dry.er.heldCount} held by legal holds and kept` : ""}. Nothing was changed.
          </Notice>
          <KV
            rows={[
              ["Entries to erase", listed(dry.er.erased.map(String), dry.er.erasedCount)],
              ["Held", listed(dry.er.held.map((h) => `entry ${h.index} (hold ${h.holdId}, case ${h.caseRef})`), dry.er.heldCount, "; ")],
            ]}
          />
          {dryValid && dry.er.erasedCount > 0n && (
            <>
              <label class="check">
                <input type="checkbox" checked={confirm} onChange={(e) => setConfirm(e.currentTarget.checked)} data-testid="confirm-erasure" /> I understand that erasing destroys these
                payloads' keys for good: no backup brings them back.
              </label>
              <div class="buttons">
                <button class="danger" disabled={!confirm || execute.busy} onClick={() => execute.run()} data-testid="execute-erasure">
                  {execute.busy ? "Erasing…" : `Erase ${dry.er.erasedCount} entries`}
                </button>
              </div>
            </>
          )}
          {!dryValid && <Notice kind="warn">The request changed since this dry run: run it again before erasing.</Notice>}
          <ErrorBox error={execute.error} />
        </Panel>
      )}
      {done && <ErasureDetail er={done} title="Erasure done" testid="erasure-done" />}
      <Panel title="Past requests" testid="erasure-history">
        <ErrorBox error={loadHistory.error} />
        <ErrorBox error={fetchReceipt.error} />
        <ErrorBox error={openPast.error} />
        {history && history.length === 0 && <Notice>No erasure request or sweep yet.</Notice>}
        {history && history.length > 0 && (
          <table class="grid">
            <thead>
              <tr>
                <th>Request</th>
                <th>Kind</th>
                <th>State</th>
                <th>Selector</th>
                <th>Legal basis</th>
                <th>Ticket</th>
                <th>Requested</th>
                <th>Completed</th>
                <th class="num">Erased</th>
                <th class="num">Held</th>
                <th>Receipt</th>
              </tr>
            </thead>
            <tbody>
              {history.map((e) => (
                <tr data-testid="erasure-row">
                  <td>
                    <code>{e.requestId}</code>
                  </td>
                  <td>{e.kind}</td>
                  <td>
                    <Badge tone={e.state === "done" ? "ok" : "warn"}>{e.state}</Badge>
                  </td>
                  <td>{e.selector}</td>
                  <td>{e.legalBasis}</td>
                  <td>{e.ticket}</td>
                  <td>{time(e.requestedAt)}</td>
                  <td>{time(e.completedAt)}</td>
                  <td class="num">{e.erasedCount.toString()}</td>
                  <td class="num">{e.heldCount.toString()}</td>
                  <td>
                    {e.state === "done" && e.kind === "erasure" && (
                      <>
                        <button onClick={() => fetchReceipt.run(e.requestId)}>Download</button>{" "}
                        <button onClick={() => openPast.run(e.requestId)} data-testid="open-receipt">
                          Check
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {(page > 0 || pages[page + 1]) && (
          <div class="pager">
            <button disabled={page === 0 || loadHistory.busy} onClick={() => loadHistory.run(page - 1)}>
              ← Newer
            </button>
            <span>page {page + 1}</span>
            <button disabled={!pages[page + 1] || loadHistory.busy} onClick={() => loadHistory.run(page + 1)} data-testid="erasures-next">
              Older →
            </button>
          </div>
        )}
      </Panel>
      {past && <ErasureDetail er={past} title={`Request ${past.requestId}`} testid="past-erasure" />}
    </Page>
  );
}

/** A page of a list, saying how much of it is shown. */
function listed(items: string[], count: bigint, sep = ", "): string {
  const shown = items.join(sep);
  return BigInt(items.length) < count ? `${shown} … (the first ${items.length} of ${count})` : shown;
}

function downloadReceipt(er: Erasure) {
  const doc = { receipt: JSON.parse(er.receipt), receipt_json: er.receipt, signature: er.receiptSignature };
  download(JSON.stringify(doc, null, 2) + "\n", `erasure-receipt-${er.requestId}.json`, "application/json");
}

function ErasureDetail(props: { er: Erasure; title: string; testid?: string }) {
  const { api } = useCtx();
  const er = props.er;
  const [check, setCheck] = useState<ReceiptVerification | null>(null);
  const verify = useAction(async () => {
    setCheck(null);
    setCheck(await verifyReceipt(api, er));
  });
  return (
    <Panel title={props.title} testid={props.testid}>
      <Notice kind="ok">
        Erased {er.erasedCount.toString()} entries; tombstone at ledger entry {er.tombstoneIndex?.toString()}; {er.heldCount.toString()} held.
      </Notice>
      <KV
        rows={[
          ["Request", er.requestId],
          ["State", er.state],
          ["Erased entries", listed(er.erased.map(String), er.erasedCount)],
          ["Completed", time(er.completedAt)],
        ]}
      />
      <h3>Signed receipt</h3>
      <Pre text={JSON.stringify(JSON.parse(er.receipt), null, 2)} testid="receipt" />
      <Pre text={er.receiptSignature} />
      <div class="buttons">
        <button onClick={() => downloadReceipt(er)} data-testid="download-receipt">
          Download receipt
        </button>
        <button onClick={() => verify.run()} disabled={verify.busy} data-testid="check-receipt">
          {verify.busy ? "Checking…" : "Check the receipt"}
        </button>
      </div>
      <p class="muted">
        Checks, in this browser with the pinned log key, the receipt's signature and checkpoint, then each tombstone part it names (fetched
        with an inclusion proof into the receipt's checkpoint): that it is this request's, and that the parts name exactly the erased and held
        entries the receipt counts. The same checks as <code>veritrace verify-receipt</code>.
      </p>
      {check && (
        <div data-testid="receipt-check">
          <Notice kind={check.ok ? "ok" : "bad"} testid={check.ok ? "receipt-verified" : "receipt-not-verified"}>
            {`${receiptVerdict(check)}.`}
            {check.ok && ` Its ${check.receipt?.tombstones.length} tombstone part(s) name ${check.receipt?.erasedCount} erased and ${check.receipt?.heldCount} held entries.`}
          </Notice>
          <CheckList checks={check.steps.map((s) => ({ name: s.name, passed: s.passed, failures: s.failures, skipped: s.skipped ?? "" }))} />
        </div>
      )}
      <ErrorBox error={verify.error} />
    </Panel>
  );
}
