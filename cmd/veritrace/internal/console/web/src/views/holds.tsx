// Legal holds: place, release, list. A held entry is neither erased nor
// expired until the hold is released; every call is recorded.

import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useState } from "preact/hooks";
import { useCtx } from "../context";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Hold, HoldScope, HoldScopeSchema } from "../gen/veritrace/v1/retention_pb";
import { hex, time } from "../format";
import { fromHex } from "../verify/bytes";
import { Badge, ErrorBox, Field, Id, Notice, Page, Panel, Pseudonym, pseudonymHelp, useAction } from "../ui";
import { showAccessLogFor, type Concerning } from "./accesslog";

type ScopeKind = "subject" | "session" | "trace" | "range" | "tenant";

/**
 * A new request id for a hold: one per submission of the form. It is kept
 * until the server answers with the hold, so that submitting again after
 * an error (an answer lost to a timeout or a reset, after the server may
 * have placed the hold) asks again with the same id, and the server places
 * one hold; it is replaced once the hold is placed, or once the server
 * says the id placed a different hold (the form was changed after such an
 * error).
 */
export function newHoldRequestId(): string {
  const r = new Uint8Array(8);
  crypto.getRandomValues(r);
  return "hold-" + new Date().toISOString().slice(0, 10) + "-" + [...r].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What a hold covers, in words. A subject or session is named by its id
 * while it exists (with the pseudonym that the hold's ledger entry and the
 * access log name it by); once erased, by its pseudonym alone, and
 * whether it was a subject or a session (pseudonymKind).
 */
export function scopeText(s?: HoldScope): string {
  if (!s) return "";
  if (s.tenant) return "the whole tenant";
  if (s.subjectId) return `subject ${s.subjectId}`;
  if (s.sessionId) return `session ${s.sessionId}`;
  if (s.erased) return erasedText(s);
  if (s.traceId.length) return `trace ${hex(s.traceId)}`;
  if (s.from || s.to) return `entries appended ${s.from ? "from " + time(s.from) : ""} ${s.to ? "until " + time(s.to) : ""}`;
  // A scope that names nothing covers every entry, as `hold list` says.
  return "every entry (no scope recorded)";
}

/** An erased scope, by its kind when the server says it. */
function erasedText(s: HoldScope): string {
  return s.pseudonymKind === "subject" || s.pseudonymKind === "session" ? `erased ${s.pseudonymKind}` : "erased subject or session";
}

function Covers(props: { scope?: HoldScope; onAccessLog?: (c: Concerning) => void }) {
  const s = props.scope;
  if (!s) return null;
  const id = s.subjectId || s.sessionId;
  if (s.erased) {
    return (
      <span data-testid="hold-erased">
        <Badge tone="muted" title="Erased since the hold was placed: its pseudonym key is destroyed, so its id can no longer be shown, and nothing links this pseudonym to it">
          {erasedText(s)}
        </Badge>{" "}
        {s.pseudonym && <Pseudonym value={s.pseudonym} />}
      </span>
    );
  }
  return (
    <span>
      {scopeText(s)}
      {s.pseudonym && (
        <>
          {" "}
          <Pseudonym value={s.pseudonym} />
        </>
      )}
      {id && props.onAccessLog && (
        <>
          {" "}
          <button
            type="button"
            class="link"
            data-testid="hold-access-log"
            title="The access-log records that name this pseudonym"
            onClick={() => props.onAccessLog?.({ field: s.subjectId ? "subject" : "session", id })}
          >
            access records
          </button>
        </>
      )}
    </span>
  );
}

/**
 * What the console says when a hold request is answered with a hold that
 * its request id placed before and that has been released since (the
 * first answer was lost, and the hold released meanwhile): that hold is
 * NOT in force.
 */
export function releasedText(h: Hold, requestId: string): string {
  return (
    `Hold ${h.id} for case ${h.caseRef} was placed by this request (${requestId}) at ${time(h.placedAt)} by ${h.placedBy}, ` +
    `and released at ${time(h.releasedAt)} by ${h.releasedBy} ("${h.releaseReason}"): it is NOT in force, and nothing is held by it. ` +
    `Submit the form again to place a new hold.`
  );
}

export function HoldsView() {
  const { api, tenant, can } = useCtx();
  const [holds, setHolds] = useState<Hold[] | null>(null);
  const [all, setAll] = useState(false);
  const [kind, setKind] = useState<ScopeKind>("subject");
  const [value, setValue] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [caseRef, setCaseRef] = useState("");
  const [reason, setReason] = useState("");
  const [placed, setPlaced] = useState("");
  const [released, setReleased] = useState("");
  const [requestId, setRequestId] = useState(newHoldRequestId());
  const [releasing, setReleasing] = useState<string | null>(null);
  const [releaseReason, setReleaseReason] = useState("");
  const load = useAction(async () => setHolds((await api.retention.listHolds({ all })).holds));
  useEffect(() => {
    load.run();
  }, [all]);
  const place = useAction(async () => {
    const scope: MessageInitShape<typeof HoldScopeSchema> = {};
    const v = value.trim();
    if (kind === "subject") scope.subjectId = v;
    if (kind === "session") scope.sessionId = v;
    if (kind === "trace") {
      if (!/^[0-9a-f]{32}$/.test(v)) throw new Error("trace id: 32 lowercase hex digits");
      scope.traceId = fromHex(v);
    }
    if (kind === "tenant") scope.tenant = true;
    if (kind === "range") {
      if (from) scope.from = timestampFromDate(new Date(from + ":00Z"));
      if (to) scope.to = timestampFromDate(new Date(to + ":00Z"));
    }
    let r;
    try {
      r = await api.retention.placeHold({ requestId, scope, caseRef: caseRef.trim(), reason: reason.trim() });
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.AlreadyExists) {
        // The id placed a hold that differs from this form: that hold is
        // in the list, and what is submitted next is a new request.
        setRequestId(newHoldRequestId());
        await load.run();
      }
      throw e;
    }
    setRequestId(newHoldRequestId());
    if (r.hold?.releasedAt) {
      // The request was placed before (its answer lost) and the hold has
      // been released since: nothing is held. The form is kept, so that
      // submitting it again places a new hold under a new request id.
      setPlaced("");
      setReleased(releasedText(r.hold, requestId));
      await load.run();
      return;
    }
    setReleased("");
    const ps = r.hold?.scope?.pseudonym;
    setPlaced(`Hold ${r.hold?.id} placed for case ${r.hold?.caseRef} (ledger entry ${r.index}${ps ? `, which names the ${kind} by pseudonym:${ps}` : ""}).`);
    setValue("");
    setCaseRef("");
    setReason("");
    await load.run();
  });
  const release = useAction(async (id: string) => {
    await api.retention.releaseHold({ holdId: id, reason: releaseReason.trim() });
    setReleasing(null);
    setReleaseReason("");
    await load.run();
  });
  return (
    <Page title={`Legal holds · ${tenant}`}>
      <form
        class="panel filters"
        onSubmit={(e) => {
          e.preventDefault();
          place.run();
        }}
        data-testid="hold-form"
      >
        <h2 class="full">Place a hold</h2>
        <Field label="Covers">
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value as ScopeKind)} name="scope">
            <option value="subject">a data subject</option>
            <option value="session">a session</option>
            <option value="trace">a trace</option>
            <option value="range">a time range</option>
            <option value="tenant">the whole tenant</option>
          </select>
        </Field>
        {(kind === "subject" || kind === "session" || kind === "trace") && (
          <Field label={kind === "trace" ? "Trace id" : kind === "subject" ? "Subject id" : "Session id"}>
            <input value={value} onInput={(e) => setValue(e.currentTarget.value)} name="scope-value" required />
          </Field>
        )}
        {kind === "range" && (
          <>
            <Field label="From (UTC)">
              <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
            </Field>
            <Field label="To (UTC)">
              <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
            </Field>
          </>
        )}
        <Field label="Case reference">
          <input value={caseRef} onInput={(e) => setCaseRef(e.currentTarget.value)} name="case" required placeholder="CASE-7" />
        </Field>
        <Field label="Reason" wide>
          <input value={reason} onInput={(e) => setReason(e.currentTarget.value)} name="reason" required placeholder="pending litigation" />
        </Field>
        <div class="buttons">
          <button type="submit" class="primary" disabled={place.busy} data-testid="place-hold">
            Place hold
          </button>
        </div>
      </form>
      <ErrorBox error={place.error} />
      {place.error && (
        <p class="muted" data-testid="hold-request-id">
          Request <code>{requestId}</code>: placing the hold again sends the same request id, so the server places it once even if it placed it
          before the error.
        </p>
      )}
      {placed && <Notice kind="ok" testid="hold-placed">{placed}</Notice>}
      {released && <Notice kind="bad" testid="hold-released">{released}</Notice>}
      <Panel title="Holds" testid="holds">
        <label class="check">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.currentTarget.checked)} /> include released holds
        </label>
        <ErrorBox error={load.error} />
        {holds && holds.length === 0 && <Notice>No {all ? "" : "active "}holds.</Notice>}
        {holds && holds.length > 0 && (
          <table class="grid">
            <thead>
              <tr>
                <th>Hold</th>
                <th>Case</th>
                <th>Covers</th>
                <th>Reason</th>
                <th>Placed</th>
                <th>State</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {holds.map((h) => (
                <tr data-testid="hold-row">
                  <td>
                    <Id value={h.id} />
                    {h.requestId && (
                      <div class="muted" data-testid="hold-request" title="The request id the hold was placed with">
                        request <code>{h.requestId}</code>
                      </div>
                    )}
                  </td>
                  <td>{h.caseRef}</td>
                  <td class="wrap">
                    <Covers scope={h.scope} onAccessLog={can("read_access_log") ? showAccessLogFor : undefined} />
                  </td>
                  <td class="wrap">{h.reason}</td>
                  <td>
                    {time(h.placedAt)} <span class="muted">by {h.placedBy}</span>
                  </td>
                  <td>
                    {h.releasedAt ? (
                      <span>
                        <Badge tone="muted">released</Badge> {time(h.releasedAt)}: {h.releaseReason}
                      </span>
                    ) : (
                      <Badge tone="warn">active</Badge>
                    )}
                  </td>
                  <td>
                    {!h.releasedAt &&
                      (releasing === h.id ? (
                        <form
                          class="inline"
                          onSubmit={(e) => {
                            e.preventDefault();
                            release.run(h.id);
                          }}
                        >
                          <input value={releaseReason} onInput={(e) => setReleaseReason(e.currentTarget.value)} placeholder="reason" required name="release-reason" />
                          <button type="submit" disabled={release.busy} data-testid="confirm-release">
                            Release
                          </button>
                          <button type="button" onClick={() => setReleasing(null)}>
                            Cancel
                          </button>
                        </form>
                      ) : (
                        <button onClick={() => setReleasing(h.id)} data-testid="release">
                          Release…
                        </button>
                      ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {holds?.some((h) => h.scope?.pseudonym) && (
          <p class="muted" data-testid="holds-pseudonym-help">
            A hold on a subject or session is recorded in the ledger under the id's pseudonym, never the id: the id is shown here only while
            the subject or session exists. {pseudonymHelp} A hold in force keeps the subject's data and its pseudonym key; once the hold is
            released and the subject erased, the hold shows only the pseudonym.
          </p>
        )}
        <ErrorBox error={release.error} />
      </Panel>
    </Page>
  );
}
