// A trace's decision path: a waterfall and a tree with timings, models and
// parameters, tokens and cost, messages, retrieved documents, tool calls,
// guardrail outcomes, retries and fallbacks, and the versions in force with
// their content; verification in the browser; export.

import { toJsonString } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { useEffect, useMemo, useState } from "preact/hooks";
import { useCtx } from "../context";
import { ExportPanel } from "../exporting";
import { TreePlacement, type GetTraceResponse, type SpanNode } from "../gen/veritrace/v1/audit_pb";
import { GuardrailOutcome, SpanKind, StatusCode, type Message, type Span } from "../gen/veritrace/v1/span_pb";
import { VersionKind, type Version } from "../gen/veritrace/v1/version_pb";
import { bytesSize, duration, enumName, hex, kindName, money, ms, num, time } from "../format";
import { linkClick } from "../router";
import { pins } from "../session";
import { fetchTrace } from "../tracepages";
import { fromHex, utf8Decoder } from "../verify/bytes";
import { parseVerifierKey } from "../verify/note";
import { verifyTrace, type TraceVerification } from "../verify/trace";
import { Badge, ErrorBox, Field, Id, KV, Loading, Notice, Page, Panel, Pre, useAction } from "../ui";
import { CheckList } from "./checks";

interface Row {
  node: SpanNode;
  depth: number;
  start?: number;
  end?: number;
  /** A failed attempt later retried, a retry, or a fallback to another model. */
  attempt?: "failed attempt" | "retry" | "fallback";
}

/** How many levels the waterfall and the tree indent: the server nests at most 32 (deeper spans placed beside their parent). */
const maxIndent = 30;

/** Why a span is not shown under its parent, in a word or two; "" when it is. */
function placementBadge(n: SpanNode): string {
  switch (n.placement) {
    case TreePlacement.PARENT_MISSING:
      return "parent not in trace";
    case TreePlacement.PARENT_CYCLE:
      return "parent loop";
    case TreePlacement.DEPTH_CAPPED:
      return "nested too deep";
  }
  return "";
}

/** Why a span is not shown under its parent, in a sentence; "" when it is. */
function placementText(n: SpanNode): string {
  switch (n.placement) {
    case TreePlacement.PARENT_MISSING:
      return "Its parent span is not among this trace's spans in the ledger (not sent, sent in another trace, or not arrived yet): it is shown as a root.";
    case TreePlacement.PARENT_CYCLE:
      return "Following parents from this span leads round a loop (spans that name each other, or itself, as parent): the ledger holds them all, and this one is shown as a root so that the loop can be seen.";
    case TreePlacement.DEPTH_CAPPED:
      return "Its parent is nested 32 spans deep, the most the server shows: it is shown beside its parent rather than under it.";
  }
  return "";
}

function spanModel(s?: Span): string {
  return s?.model?.requestModel || s?.model?.responseModel || "";
}

function isError(s?: Span): boolean {
  return s?.status?.code === StatusCode.ERROR;
}

/** Flattens the tree depth-first and marks retries and fallbacks: among siblings of one kind, a failed span followed by another is a failed attempt, and the next one a retry (same model) or a fallback (another model). */
function rows(roots: SpanNode[]): Row[] {
  const out: Row[] = [];
  const walk = (nodes: SpanNode[], depth: number) => {
    const marks = new Map<SpanNode, Row["attempt"]>();
    nodes.forEach((n, i) => {
      if (!isError(n.span)) return;
      const next = nodes.slice(i + 1).find((m) => m.kind === n.kind && m.span?.name === n.span?.name) ?? nodes.slice(i + 1).find((m) => m.kind === n.kind);
      if (!next) return;
      marks.set(n, "failed attempt");
      if (!marks.has(next) || marks.get(next) === "failed attempt") {
        if (!isError(next.span) || !marks.has(next)) marks.set(next, spanModel(next.span) !== spanModel(n.span) ? "fallback" : "retry");
      }
    });
    for (const n of nodes) {
      out.push({ node: n, depth, start: ms(n.span?.startTime), end: ms(n.span?.endTime), attempt: marks.get(n) });
      walk(n.children, depth + 1);
    }
  };
  walk(roots, 0);
  return out;
}

export function TraceView(props: { traceId: string }) {
  const { api, can, tenant } = useCtx();
  const [trace, setTrace] = useState<GetTraceResponse | null>(null);
  const [selected, setSelected] = useState<SpanNode | null>(null);
  const [view, setView] = useState<"waterfall" | "tree">("waterfall");
  const load = useAction(async () => {
    const t = await fetchTrace((req) => api.audit.getTrace(req), fromHex(props.traceId));
    setTrace(t);
    setSelected(t.roots[0] ?? null);
  });
  useEffect(() => {
    load.run();
  }, [props.traceId]);

  const list = useMemo(() => (trace ? rows(trace.roots) : []), [trace]);
  if (load.error) {
    return (
      <Page title="Trace">
        <ErrorBox error={load.error} />
      </Page>
    );
  }
  if (!trace) return <Loading what="the trace" />;

  const starts = list.map((r) => r.start).filter((x): x is number => x !== undefined);
  const ends = list.map((r) => r.end ?? r.start).filter((x): x is number => x !== undefined);
  const t0 = Math.min(...starts);
  const t1 = Math.max(...ends);
  const spanTotal = t1 > t0 ? t1 - t0 : 0;
  const tokensIn = list.reduce((a, r) => a + Number(r.node.span?.usage?.inputTokens ?? 0n), 0);
  const tokensOut = list.reduce((a, r) => a + Number(r.node.span?.usage?.outputTokens ?? 0n), 0);
  const cost = new Map<string, number>();
  list.forEach((r) => r.node.span?.usage?.cost && cost.set(r.node.span.usage.currency, (cost.get(r.node.span.usage.currency) ?? 0) + r.node.span.usage.cost));
  const errors = list.filter((r) => isError(r.node.span)).length;
  const erased = list.filter((r) => r.node.erased).length;

  return (
    <Page title="Trace" actions={<a href="/ui/traces" onClick={linkClick("/traces")}>← Search</a>}>
      <Panel testid="trace-summary">
        <KV
          rows={[
            ["Trace id", <code data-testid="trace-id">{props.traceId}</code>],
            ["Spans", `${list.length}${erased ? ` (${erased} erased)` : ""}`],
            ["Duration", duration(spanTotal)],
            ["Tokens", `${num(tokensIn)} in / ${num(tokensOut)} out`],
            ["Cost", [...cost].map(([c, a]) => money(a, c)).join(" + ")],
            ["Status", errors ? <Badge tone="bad">{errors} failed span{errors > 1 ? "s" : ""}</Badge> : <Badge tone="ok">no errors</Badge>],
          ]}
        />
      </Panel>
      <div class="split">
        <Panel class="path" testid="decision-path">
          <div class="tabs" role="tablist">
            <button role="tab" aria-selected={view === "waterfall"} class={view === "waterfall" ? "on" : ""} onClick={() => setView("waterfall")}>
              Waterfall
            </button>
            <button role="tab" aria-selected={view === "tree"} class={view === "tree" ? "on" : ""} onClick={() => setView("tree")} data-testid="tree-tab">
              Tree
            </button>
          </div>
          {view === "waterfall" ? (
            <Waterfall rows={list} t0={t0} total={spanTotal} selected={selected} onSelect={setSelected} />
          ) : (
            <Tree rows={list} selected={selected} onSelect={setSelected} />
          )}
        </Panel>
        <Panel class="detail" testid="span-detail">
          {selected ? <SpanDetail node={selected} versions={trace.versions} attempt={list.find((r) => r.node === selected)?.attempt} /> : <Notice>Select a span.</Notice>}
        </Panel>
      </div>
      <Versions versions={trace.versions} />
      <VerifyPanel trace={trace} tenant={tenant} />
      {can("export_evidence") && (
        <ExportPanel query={{ traceId: fromHex(props.traceId) }} what={props.traceId.slice(0, 16)} label="Export evidence bundle" testid="export-trace"
          text="Export this trace, its versions and their proofs as a signed evidence bundle to verify offline." />
      )}
    </Page>
  );
}

function kindTone(k: SpanKind): string {
  return "k-" + kindName(k);
}

function Waterfall(props: { rows: Row[]; t0: number; total: number; selected: SpanNode | null; onSelect: (n: SpanNode) => void }) {
  const { rows: list, t0, total } = props;
  return (
    <div class="waterfall" data-testid="waterfall">
      <div class="wf-axis">
        <span>0 ms</span>
        <span>{duration(total / 2)}</span>
        <span>{duration(total)}</span>
      </div>
      {list.map((r) => {
        const s = r.node.span;
        const left = r.start !== undefined && total > 0 ? ((r.start - t0) / total) * 100 : 0;
        const width = r.start !== undefined && r.end !== undefined && total > 0 ? Math.max(0.5, ((r.end - r.start) / total) * 100) : 0.5;
        return (
          <div class={"wf-row" + (props.selected === r.node ? " selected" : "")} onClick={() => props.onSelect(r.node)} data-testid="span-row">
            <div class="wf-name" style={{ paddingLeft: `${Math.min(r.depth, maxIndent) * 14 + 4}px` }} title={s?.name}>
              <Badge tone={kindTone(r.node.kind)}>{kindName(r.node.kind)}</Badge>
              {placementBadge(r.node) && <Badge tone="warn">{placementBadge(r.node)}</Badge>}
              {r.attempt && <Badge tone={r.attempt === "failed attempt" ? "bad" : "warn"}>{r.attempt}</Badge>} {r.node.erased ? <em>erased</em> : r.node.decodeError ? <em>undecodable</em> : s?.name}
            </div>
            <div class="wf-track">
              <div class={"wf-bar " + kindTone(r.node.kind) + (isError(s) ? " err" : "")} style={{ left: `${left}%`, width: `${width}%` }} />
            </div>
            <div class="wf-dur">{r.start !== undefined && r.end !== undefined ? duration(r.end - r.start) : ""}</div>
          </div>
        );
      })}
    </div>
  );
}

function Tree(props: { rows: Row[]; selected: SpanNode | null; onSelect: (n: SpanNode) => void }) {
  return (
    <ul class="tree" data-testid="tree">
      {props.rows.map((r) => {
        const s = r.node.span;
        return (
          <li class={props.selected === r.node ? "selected" : ""} style={{ paddingLeft: `${Math.min(r.depth, maxIndent) * 18}px` }} onClick={() => props.onSelect(r.node)}>
            <span class="branch">{r.depth > 0 ? "└ " : ""}</span>
            <Badge tone={kindTone(r.node.kind)}>{kindName(r.node.kind)}</Badge> {r.node.erased ? <em>erased</em> : s?.name}
            {spanModel(s) && <span class="muted"> · {spanModel(s)}</span>}
            {s?.usage && (s.usage.inputTokens || s.usage.outputTokens) ? <span class="muted"> · {num(s.usage.inputTokens)}/{num(s.usage.outputTokens)} tok</span> : null}
            {isError(s) && <Badge tone="bad">error</Badge>}
            {r.attempt && <Badge tone="warn">{r.attempt}</Badge>}
            {placementBadge(r.node) && <Badge tone="warn">{placementBadge(r.node)}</Badge>}
            <span class="muted"> · {r.start !== undefined && r.end !== undefined ? duration(r.end - r.start) : ""}</span>
          </li>
        );
      })}
    </ul>
  );
}

function Messages(props: { title: string; messages: Message[] }) {
  if (props.messages.length === 0) return null;
  return (
    <div class="messages">
      <h3>{props.title}</h3>
      {props.messages.map((m) => (
        <div class={"message role-" + m.role}>
          <div class="message-role">
            {m.role}
            {m.finishReason && <span class="muted"> · finish: {m.finishReason}</span>}
          </div>
          {m.parts.map((p) => {
            switch (p.part.case) {
              case "text":
                return <Pre text={p.part.value} />;
              case "reasoning":
                return (
                  <div>
                    <span class="muted">reasoning</span>
                    <Pre text={p.part.value} />
                  </div>
                );
              case "toolCall":
                return (
                  <div class="toolcall">
                    tool call <code>{p.part.value.name}</code> <span class="muted">id {p.part.value.id}</span>
                    <Pre text={p.part.value.arguments} />
                  </div>
                );
              case "toolCallResponse":
                return (
                  <div class="toolcall">
                    tool result <span class="muted">for {p.part.value.id}</span>
                    <Pre text={p.part.value.result} />
                  </div>
                );
              case "uri":
                return (
                  <div>
                    link <code>{p.part.value}</code>
                  </div>
                );
              case "blob":
                return (
                  <div class="muted">
                    {p.part.value.mimeType || "binary"} content, {bytesSize(p.part.value.data.length)} (not shown)
                  </div>
                );
            }
            return null;
          })}
        </div>
      ))}
    </div>
  );
}

function SpanDetail(props: { node: SpanNode; versions: Version[]; attempt?: string }) {
  const { node } = props;
  const s = node.span;
  const head = (
    <KV
      rows={[
        ["Entry", <span>index {node.index.toString()} · appended {time(node.appendedAt)}</span>],
        ["Leaf hash", <Id value={hex(node.leafHash)} n={24} />],
        ["Span id", <code>{hex(node.spanId)}</code>],
      ]}
    />
  );
  const placement = placementText(node) && (
    <Notice kind="warn" testid="span-placement">
      {placementText(node)}
    </Notice>
  );
  if (!s && node.decodeError) {
    return (
      <div data-testid="span-undecodable">
        <h2>
          <Badge tone={kindTone(node.kind)}>{kindName(node.kind)}</Badge> undecodable span
        </h2>
        <Notice kind="warn">This span's payload is recorded but cannot be shown decoded: {node.decodeError}. GetEntry gives its bytes.</Notice>
        {placement}
        {head}
      </div>
    );
  }
  if (!s) {
    // What the entry header still tells of an erased span (GetTrace sends it).
    const h = node.header;
    const refs = [h?.versions?.prompt, h?.versions?.policy, h?.versions?.pipeline].filter((v): v is string => !!v);
    return (
      <div data-testid="span-erased">
        <h2>
          <Badge tone={kindTone(node.kind)}>{kindName(node.kind)}</Badge> erased span
        </h2>
        <Notice kind="warn">
          This span's payload was erased (its data key destroyed)
          {node.erasedByTombstone !== undefined ? ` by the tombstone at ledger entry ${node.erasedByTombstone.toString()}` : ""}. Its header, leaf hash
          and proofs remain and still verify; the header still tells the following.
        </Notice>
        {placement}
        {head}
        {h && (
          <KV
            rows={[
              ["Parent span", h.parentSpanId.length ? <code data-testid="erased-parent">{hex(h.parentSpanId)}</code> : "none (root)"],
              ["Versions", refs.length ? refs.map((v) => <Id value={v} n={16} />) : "none referenced"],
              ["Retention class", h.retentionClass || "none"],
            ]}
          />
        )}
      </div>
    );
  }
  const d = ms(s.endTime) !== undefined && ms(s.startTime) !== undefined ? ms(s.endTime)! - ms(s.startTime)! : undefined;
  const m = s.model;
  const c = s.content;
  const versionOf = (id: string) => props.versions.find((v) => v.id === id);
  return (
    <div>
      <h2>
        <Badge tone={kindTone(node.kind)}>{kindName(node.kind)}</Badge> {s.name}
      </h2>
      {props.attempt && <Notice kind="warn">This span is a {props.attempt} among its siblings.</Notice>}
      {placement}
      <KV
        rows={[
          ["Status", s.status ? <span>{enumName(StatusCode[s.status.code], "")}{s.status.message ? `: ${s.status.message}` : ""}</span> : "not given"],
          ["Start", time(s.startTime)],
          ["Duration", duration(d)],
          ["Session", s.sessionId],
          ["Subject", s.subjectId],
          ["Parent span", s.parentSpanId.length ? <code>{hex(s.parentSpanId)}</code> : "none (root)"],
        ]}
      />
      {head}
      {m && (
        <>
          <h3>Model and parameters</h3>
          <KV
            rows={[
              ["Provider", m.provider],
              ["Request model", m.requestModel],
              ["Response model", m.responseModel],
              ["Response id", m.responseId],
              ["Temperature", m.temperature?.toString()],
              ["Max tokens", m.maxTokens?.toString()],
              ["Top p", m.topP?.toString()],
              ["Top k", m.topK?.toString()],
              ["Seed", m.seed?.toString()],
              ["Stop sequences", m.stopSequences.map((x) => JSON.stringify(x)).join(", ")],
              ["Finish reasons", m.finishReasons.join(", ")],
            ]}
          />
        </>
      )}
      {s.usage && (
        <>
          <h3>Usage</h3>
          <KV rows={[["Input tokens", num(s.usage.inputTokens)], ["Output tokens", num(s.usage.outputTokens)], ["Cost", s.usage.cost ? money(s.usage.cost, s.usage.currency) : ""]]} />
        </>
      )}
      {s.versions && (s.versions.prompt || s.versions.policy || s.versions.pipeline) && (
        <>
          <h3>Versions in force</h3>
          <KV
            rows={(["prompt", "policy", "pipeline"] as const).map((k) => {
              const id = s.versions![k];
              const v = id ? versionOf(id) : undefined;
              return [k, id ? <span>{v ? `${v.name} ${v.label}` : ""} <Id value={id} /></span> : ""];
            })}
          />
        </>
      )}
      {c?.systemInstructions && (
        <>
          <h3>System instructions</h3>
          <Pre text={c.systemInstructions} />
        </>
      )}
      {c && <Messages title="Input messages" messages={c.inputMessages} />}
      {c && <Messages title="Output messages" messages={c.outputMessages} />}
      {c?.retrieval && (
        <div data-testid="retrieval">
          <h3>Retrieval</h3>
          <KV rows={[["Data source", c.retrieval.dataSource], ["Query", c.retrieval.query]]} />
          {c.retrieval.documents.length > 0 && (
            <table class="grid">
              <thead>
                <tr>
                  <th>Document</th>
                  <th>Source</th>
                  <th>Version</th>
                  <th>Digest</th>
                  <th class="num">Score</th>
                </tr>
              </thead>
              <tbody>
                {c.retrieval.documents.map((d) => (
                  <>
                    <tr>
                      <td>{d.id}</td>
                      <td>{d.sourceUri}</td>
                      <td>{d.version}</td>
                      <td>{d.contentDigest && <Id value={d.contentDigest} n={20} />}</td>
                      <td class="num">{d.score.toFixed(3)}</td>
                    </tr>
                    {d.text && (
                      <tr>
                        <td colSpan={5}>
                          <Pre text={d.text} />
                        </td>
                      </tr>
                    )}
                  </>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
      {c?.toolCall && (
        <div data-testid="tool-call">
          <h3>Tool call</h3>
          <KV rows={[["Tool", c.toolCall.name], ["Call id", c.toolCall.callId], ["Type", c.toolCall.type]]} />
          <h4>Arguments</h4>
          <Pre text={c.toolCall.arguments} />
          <h4>Result</h4>
          <Pre text={c.toolCall.result} />
        </div>
      )}
      {c?.guardrail && (
        <div data-testid="guardrail">
          <h3>Guardrail</h3>
          <KV
            rows={[
              ["Guardrail", c.guardrail.name],
              ["Outcome", <Badge tone={c.guardrail.outcome === GuardrailOutcome.PASSED ? "ok" : c.guardrail.outcome === GuardrailOutcome.BLOCKED ? "bad" : "warn"}>{enumName(GuardrailOutcome[c.guardrail.outcome], "")}</Badge>],
              ["Detail", c.guardrail.detail],
            ]}
          />
        </div>
      )}
      {Object.keys(s.attributes).length > 0 && (
        <>
          <h3>Attributes</h3>
          <KV rows={Object.entries(s.attributes).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, <code>{toJsonString(ValueSchema, v)}</code>])} />
        </>
      )}
    </div>
  );
}

function Versions(props: { versions: Version[] }) {
  if (props.versions.length === 0) return null;
  return (
    <Panel title="Prompt, policy and pipeline versions in force" testid="versions">
      {props.versions.map((v) => {
        let text: string;
        try {
          text = utf8Decoder.decode(v.content);
        } catch {
          text = `(${bytesSize(v.content.length)} of binary content)`;
        }
        return (
          <details class="version">
            <summary>
              <Badge>{VersionKind[v.kind].toLowerCase()}</Badge> {v.name} <strong>{v.label}</strong> <span class="muted">· {v.mediaType || "no media type"} · registered {time(v.registeredAt)} · entry {v.index.toString()}</span> <Id value={v.id} />
            </summary>
            <Pre text={text} />
          </details>
        );
      })}
    </Panel>
  );
}

function VerifyPanel(props: { trace: GetTraceResponse; tenant: string }) {
  const { api } = useCtx();
  const [keyText, setKeyText] = useState(pins.logKey());
  const [remember, setRemember] = useState(pins.logKey() !== "");
  const [res, setRes] = useState<TraceVerification | null>(null);
  const [progress, setProgress] = useState("");
  const [pinnedMsg, setPinnedMsg] = useState("");
  const run = useAction(async () => {
    setRes(null);
    setPinnedMsg("");
    const key = await parseVerifierKey(keyText);
    if (remember) pins.setLogKey(key.text);
    const origin = `${key.name}/${props.tenant}`;
    const r = await verifyTrace(api, props.tenant, props.trace, key, pins.checkpoint(origin), (d, t) => setProgress(`${d} of ${t} entries`));
    setRes(r);
  });
  const origin = res?.checkpoint?.origin ?? "";
  return (
    <Panel title="Verify in this browser" testid="verify-panel">
      <p class="muted">
        Checks, with this browser's WebCrypto and nothing but the log's public key, that every span and version shown is exactly what the
        ledger recorded: each entry's header bytes hash to its leaf, its payload and salt open the header's commitment, the payload decodes
        to what this page shows, and an RFC 6962 inclusion proof leads from the leaf to the root of a checkpoint signed by the key (Ed25519,
        C2SP signed note). Obtain the key from your operator out of band (veritrace-data/log.pub); do not take it from this server.
      </p>
      <Field label="Log public key (note verifier key)" wide>
        <input value={keyText} onInput={(e) => setKeyText(e.currentTarget.value)} placeholder="veritrace-1a2b3c4d+89abcdef+AbC…" spellcheck={false} data-testid="log-key" />
      </Field>
      <label class="check">
        <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} /> pin this key in this browser
      </label>
      <div class="buttons">
        <button class="primary" onClick={() => run.run()} disabled={run.busy || !keyText.trim()} data-testid="verify">
          {run.busy ? `Verifying… ${progress}` : "Verify this trace"}
        </button>
      </div>
      <ErrorBox error={run.error} />
      {res && (
        <div data-testid="verify-result">
          <Notice kind={res.ok ? "ok" : "bad"} testid={res.ok ? "verified" : "not-verified"}>
            {res.ok
              ? `VERIFIED: all ${res.entries} entries are in ${origin} at tree size ${res.checkpoint?.size}, in a checkpoint signed by the key you gave.`
              : `NOT VERIFIED: ${res.steps.filter((s) => s.failures.length || s.skipped).map((s) => s.name).join(", ")} failed.`}
          </Notice>
          <CheckList checks={res.steps.map((s) => ({ name: s.name, passed: s.passed, failures: s.failures, skipped: s.skipped ?? "" }))} />
          <p class="muted">
            What this shows: every span and version on this page was recorded with exactly this content. It does not show that the trace has
            no other spans: the index that finds a trace's spans is not itself in the log (docs/BUNDLE.md).
          </p>
          {res.ok && res.checkpointNote && (
            <div class="buttons">
              <button
                onClick={() => {
                  pins.setCheckpoint(origin, res.checkpointNote!);
                  setPinnedMsg(`Pinned checkpoint of ${origin} at size ${res.checkpoint?.size}: later verifications and exports check that the log only grew since.`);
                }}
                data-testid="pin-checkpoint"
              >
                Pin this checkpoint
              </button>
            </div>
          )}
          {pinnedMsg && <Notice kind="ok">{pinnedMsg}</Notice>}
        </div>
      )}
    </Panel>
  );
}
