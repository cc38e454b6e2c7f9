// The tenant's access log: who read, exported, erased, or was refused.
// It is itself in the ledger; reading it is recorded too. It can be
// narrowed to the records that concern one subject or session: the server
// computes the id's pseudonym and returns the records that name it. The id
// is personal data, so the filter lives only in this page's memory (never
// in the URL or storage) and is forgotten at sign-out.

import { useEffect, useRef, useState } from "preact/hooks";
import { useCtx } from "../context";
import { AccessOutcome } from "../gen/veritrace/v1/access_pb";
import type { AccessEntry } from "../gen/veritrace/v1/ledger_pb";
import { Role } from "../gen/veritrace/v1/admin_pb";
import { enumName, refusalSummary, targetParts, time } from "../format";
import { navigate } from "../router";
import { forgetOnSignOut } from "../session";
import { Badge, ErrorBox, Field, Id, Notice, Page, Panel, Pseudonym, pseudonymHelp, useAction } from "../ui";

/** Whose records to show: a subject's or a session's, by its id. */
export interface Concerning {
  field: "subject" | "session";
  id: string;
}

// A filter handed over by another page (a hold's "access records"), taken
// once by the next access-log page; in memory only.
let handedOver: Concerning | null = null;
forgetOnSignOut(() => (handedOver = null));

/** Opens the access log filtered to the records that concern a subject or session. */
export function showAccessLogFor(c: Concerning) {
  handedOver = c;
  navigate("/access-log");
}

function Target(props: { target: string }) {
  return (
    <>
      {targetParts(props.target).map((p) => (typeof p === "string" ? p : <Pseudonym value={p.pseudonym} />))}
    </>
  );
}

export function AccessLogView() {
  const { api, tenant, can } = useCtx();
  const [concerning, setConcerning] = useState<Concerning | null>(() => {
    const c = handedOver;
    handedOver = null;
    return c;
  });
  const [field, setField] = useState<"subject" | "session">(concerning?.field ?? "subject");
  const [id, setId] = useState(concerning?.id ?? "");
  const [from, setFrom] = useState<bigint[]>([0n]); // start index of each page
  const [page, setPage] = useState(0);
  const [entries, setEntries] = useState<AccessEntry[] | null>(null);
  const [next, setNext] = useState<bigint>(0n);
  const [loadedFrom, setLoadedFrom] = useState<bigint | null>(null); // the start index of the entries shown
  const [outcome, setOutcome] = useState<string>("");
  const asked = useRef(0); // only the answer to the latest request is shown
  const load = useAction(async (start: bigint) => {
    const n = ++asked.current;
    const r = await api.ledger.listAccessLog({
      fromIndex: start,
      pageSize: 100,
      subjectId: concerning?.field === "subject" ? concerning.id : "",
      sessionId: concerning?.field === "session" ? concerning.id : "",
    });
    if (n !== asked.current) return;
    setEntries(r.entries);
    setNext(r.nextIndex);
    setLoadedFrom(start);
  });
  useEffect(() => {
    load.run(from[page]);
  }, [page, concerning]);
  const apply = (c: Concerning | null) => {
    setEntries(null);
    setFrom([0n]);
    setPage(0);
    setConcerning(c);
  };
  const shown = (entries ?? []).filter((e) => !outcome || String(e.record?.outcome) === outcome);
  return (
    <Page title={`Access log · ${tenant}`}>
      <Panel testid="access-log">
        <p class="muted">
          Every read of payloads, every export, every retention, hold and erasure call and every refused request, appended to the ledger
          before the answer was sent; refusals after the first of a burst are counted in a summary a minute, naming the keys and targets
          refused. Your reading this page is recorded too.
        </p>
        <p class="muted" data-testid="pseudonym-help">
          Targets never name a data subject or a session by its id: they name it by a <code class="pseudonym">pseudonym:…</code>. {pseudonymHelp}{" "}
          An id that had no pseudonym key when recorded (no data yet, or a refused request) is named by a stand-in of the same form,
          so a record never tells whether an id had data; older records may read <code>pseudonym:none</code> instead.
        </p>
        {can("read_entries") && (
        <form
          class="filters"
          data-testid="concerning-form"
          onSubmit={(e) => {
            e.preventDefault();
            const v = id.trim();
            apply(v ? { field, id: v } : null);
          }}
        >
          <Field label="Concerning">
            <select value={field} onChange={(e) => setField(e.currentTarget.value as "subject" | "session")} name="concerning">
              <option value="subject">the data subject</option>
              <option value="session">the session</option>
            </select>
          </Field>
          <Field label={field === "subject" ? "Subject id" : "Session id"} hint="kept in this page only, never in the address or storage">
            <input value={id} onInput={(e) => setId(e.currentTarget.value)} name="concerning-id" autocomplete="off" />
          </Field>
          <div class="buttons">
            <button type="submit" class="primary" disabled={load.busy || !id.trim()} data-testid="filter-concerning">
              Show its records
            </button>
            {concerning && (
              <button
                type="button"
                onClick={() => {
                  setId("");
                  apply(null);
                }}
                data-testid="clear-concerning"
              >
                All records
              </button>
            )}
          </div>
        </form>
        )}
        {concerning && (
          <Notice testid="concerning">
            Only the records that concern {concerning.field === "subject" ? "this data subject" : "this session"}: those whose target names its pseudonym,
            which the server computes from the id. Records of an id with no data here, or of one erased since, cannot be found: after an
            erasure nothing links its pseudonym to the id. This lookup is itself recorded, naming the pseudonym, never the id.
          </Notice>
        )}
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
        {entries && shown.length === 0 && (
          <Notice testid="no-access-rows">
            {concerning
              ? next
                ? `No records concerning this ${concerning.field} among the entries scanned so far (up to entry ${(next - 1n).toString()}); Later → scans on.`
                : `No records concerning this ${concerning.field}${page > 0 ? " after those shown earlier" : ""}.`
              : "No entries on this page."}
          </Notice>
        )}
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
                    <td class="wrap">{r.summary ? <span data-testid="refusal-summary">{refusalSummary(r.summary)}</span> : <Target target={r.target} />}</td>
                    <td class="wrap">
                      {r.code ? `${r.code}: ${r.reason}` : r.reason}
                      {r.allowedIndex !== undefined && <span data-testid="allowed-at"> (the outcome of the access allowed at {r.allowedIndex.toString()})</span>}
                    </td>
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
          <span data-testid="access-page" data-loaded={loadedFrom?.toString() ?? ""} data-next={next.toString()}>
            from entry {from[page].toString()}
          </span>
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
