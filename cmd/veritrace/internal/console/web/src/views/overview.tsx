// The overview: volume, errors, tokens, cost and latency over time and per
// model, span kind, version and attribute value (AuditService.
// AggregateTraces, recorded in the access log like any read).

import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { useCtx } from "../context";
import type { Aggregate, AggregateTracesResponse } from "../gen/veritrace/v1/audit_pb";
import type { Version } from "../gen/veritrace/v1/version_pb";
import { costs, duration, money, num, short, time } from "../format";
import { ErrorBox, Field, Loading, Notice, Page, Panel, useAction } from "../ui";

const RANGES: [string, number][] = [
  ["last hour", 3600],
  ["last 24 hours", 86400],
  ["last 7 days", 7 * 86400],
  ["last 30 days", 30 * 86400],
];

let savedRange = 86400;
let savedAttr = "";

export function OverviewView() {
  const { api, tenant } = useCtx();
  const [range, setRange] = useState(savedRange);
  const [attr, setAttr] = useState(savedAttr);
  const [agg, setAgg] = useState<AggregateTracesResponse | null>(null);
  const [versions, setVersions] = useState<Map<string, Version>>(new Map());
  const load = useAction(async () => {
    savedRange = range;
    savedAttr = attr;
    const to = new Date(Math.ceil(Date.now() / 60000) * 60000 + 60000);
    const from = new Date(to.getTime() - range * 1000);
    setAgg(await api.audit.aggregateTraces({ query: { from: timestampFromDate(from), to: timestampFromDate(to) }, groupByAttribute: attr.trim() }));
  });
  useEffect(() => {
    load.run();
    api.ingest.listVersions({ pageSize: 1000 }).then((r) => setVersions(new Map(r.versions.map((v) => [v.id, v]))), () => undefined);
  }, [range]);
  const versionLabel = (id: string) => {
    const v = versions.get(id);
    return v ? `${v.name} ${v.label}` : short(id, 12);
  };
  const currency = agg?.total?.cost[0]?.currency ?? "";
  return (
    <Page title={`Overview · ${tenant}`}>
      <form
        class="panel filters"
        onSubmit={(e) => {
          e.preventDefault();
          load.run();
        }}
      >
        <Field label="Time range">
          <select value={String(range)} onChange={(e) => setRange(Number(e.currentTarget.value))} data-testid="range">
            {RANGES.map(([l, s]) => (
              <option value={String(s)}>{l}</option>
            ))}
          </select>
        </Field>
        <Field label="Break down by attribute (optional)">
          <input value={attr} onInput={(e) => setAttr(e.currentTarget.value)} placeholder="deployment.environment" data-testid="group-attr" />
        </Field>
        <div class="buttons">
          <button type="submit" class="primary" disabled={load.busy}>
            Update
          </button>
        </div>
      </form>
      <ErrorBox error={load.error} />
      {!agg && load.busy && <Loading what="figures" />}
      {agg && agg.total && (
        <>
          {!agg.complete && (
            <Notice kind="warn">
              The range holds more spans than one aggregate reads ({num(agg.scanned)}): the figures cover spans appended before {time(agg.coveredUntil)}. Narrow the range for complete figures.
            </Notice>
          )}
          <div class="tiles" data-testid="totals">
            <Tile label="Traces" value={num(agg.total.traces)} />
            <Tile label="Spans" value={num(agg.total.spans)} />
            <Tile label="Errors" value={num(agg.total.errors)} sub={agg.total.spans ? `${((Number(agg.total.errors) / Number(agg.total.spans)) * 100).toFixed(1)}% of spans` : ""} />
            <Tile label="Tokens" value={num(agg.total.inputTokens + agg.total.outputTokens)} sub={`${num(agg.total.inputTokens)} in / ${num(agg.total.outputTokens)} out`} />
            <Tile label="Cost" value={costs(agg.total.cost) || "0"} />
            <Tile label="Erased spans" value={num(agg.total.erased)} />
            {agg.total.undecodable > 0n && <Tile label="Undecodable spans" value={num(agg.total.undecodable)} sub="payload not a span" />}
          </div>
          <div class="charts">
            <Panel title="Spans and errors">
              <BarChart agg={agg} series={[(a) => Number(a.spans - a.errors), (a) => Number(a.errors)]} names={["ok", "error"]} fmt={num} testid="chart-volume" />
            </Panel>
            <Panel title="Tokens">
              <BarChart agg={agg} series={[(a) => Number(a.inputTokens), (a) => Number(a.outputTokens)]} names={["input", "output"]} fmt={num} testid="chart-tokens" />
            </Panel>
            <Panel title={`Cost${currency ? " (" + currency + ")" : ""}`}>
              <BarChart agg={agg} series={[(a) => a.cost.find((c) => c.currency === currency)?.amount ?? 0]} names={["cost"]} fmt={(n) => money(n, "")} testid="chart-cost" />
            </Panel>
            <Panel title="Mean span duration">
              <BarChart agg={agg} series={[(a) => (a.spans - a.erased - a.undecodable > 0n ? a.durationMs / Number(a.spans - a.erased - a.undecodable) : 0)]} names={["mean"]} fmt={(n) => duration(n)} testid="chart-latency" />
            </Panel>
          </div>
          <div class="charts">
            <Breakdown title="By model" groups={agg.byModel} label={(k) => k || "(no model)"} testid="by-model" />
            <Breakdown title="By span kind" groups={agg.byKind} label={(k) => k} testid="by-kind" />
            <Breakdown title="By prompt version" groups={agg.byPromptVersion} label={versionLabel} />
            <Breakdown title="By policy version" groups={agg.byPolicyVersion} label={versionLabel} />
            <Breakdown title="By pipeline version" groups={agg.byPipelineVersion} label={versionLabel} />
            {attr.trim() && <Breakdown title={`By ${attr.trim()}`} groups={agg.byAttribute} label={(k) => k} testid="by-attribute" />}
          </div>
          <p class="muted">
            {num(agg.scanned)} span entries read; buckets of {bucketText(Number(agg.bucketSeconds))}, by the time the ledger appended each span (UTC).
          </p>
        </>
      )}
    </Page>
  );
}

function bucketText(s: number): string {
  if (s % 86400 === 0) return `${s / 86400} day${s === 86400 ? "" : "s"}`;
  if (s % 3600 === 0) return `${s / 3600} hour${s === 3600 ? "" : "s"}`;
  if (s % 60 === 0) return `${s / 60} minute${s === 60 ? "" : "s"}`;
  return `${s} seconds`;
}

function Tile(props: { label: string; value: string; sub?: string }) {
  return (
    <div class="tile">
      <div class="tile-label">{props.label}</div>
      <div class="tile-value">{props.value}</div>
      {props.sub && <div class="tile-sub">{props.sub}</div>}
    </div>
  );
}

const W = 560;
const H = 160;
const PAD = 52;
const RPAD = 24;

function BarChart(props: { agg: AggregateTracesResponse; series: ((a: Aggregate) => number)[]; names: string[]; fmt: (n: number) => string; testid?: string }) {
  const buckets = props.agg.buckets;
  const totals = buckets.map((b) => props.series.reduce((s, f) => s + (b.figures ? f(b.figures) : 0), 0));
  const max = Math.max(1e-9, ...totals);
  const bw = (W - PAD - RPAD) / Math.max(1, buckets.length);
  const label = (i: number) => {
    const d = buckets[i]?.start ? timestampDate(buckets[i].start!) : undefined;
    if (!d) return "";
    const iso = d.toISOString();
    return Number(props.agg.bucketSeconds) >= 86400 ? iso.slice(5, 10) : iso.slice(11, 16);
  };
  const ticks = [0, Math.floor(buckets.length / 2), buckets.length - 1].filter((x, i, a) => x >= 0 && a.indexOf(x) === i);
  return (
    <figure class="chart" data-testid={props.testid}>
      <svg viewBox={`0 0 ${W} ${H + 22}`} role="img" aria-label={props.names.join(", ") + " over time"}>
        <line x1={PAD} y1={H} x2={W - RPAD} y2={H} class="axis" />
        <text x={PAD - 4} y={10} class="tick" text-anchor="end">
          {props.fmt(max)}
        </text>
        <text x={PAD - 4} y={H} class="tick" text-anchor="end">
          0
        </text>
        {buckets.map((b, i) => {
          let y = H;
          return props.series.map((f, s) => {
            const v = b.figures ? f(b.figures) : 0;
            const h = (v / max) * (H - 12);
            y -= h;
            return v > 0 ? (
              <rect x={PAD + i * bw + 0.5} y={y} width={Math.max(1, bw - 1)} height={h} class={"s" + s}>
                <title>
                  {time(b.start)} {props.names[s]}: {props.fmt(v)}
                </title>
              </rect>
            ) : null;
          });
        })}
        {ticks.map((i) => (
          <text x={PAD + i * bw + bw / 2} y={H + 16} class="tick" text-anchor="middle">
            {label(i)}
          </text>
        ))}
      </svg>
      {props.names.length > 1 && (
        <figcaption>
          {props.names.map((n, s) => (
            <span class="legend">
              <i class={"s" + s} /> {n}
            </span>
          ))}
        </figcaption>
      )}
    </figure>
  );
}

function Breakdown(props: { title: string; groups: Aggregate[]; label: (k: string) => string; testid?: string }) {
  if (props.groups.length === 0) return null;
  const max = Math.max(1, ...props.groups.map((g) => Number(g.spans)));
  return (
    <Panel title={props.title} testid={props.testid}>
      <table class="grid breakdown">
        <thead>
          <tr>
            <th>Group</th>
            <th class="num">Spans</th>
            <th class="num">Errors</th>
            <th class="num">Tokens</th>
            <th class="num">Cost</th>
            <th class="num">Mean duration</th>
          </tr>
        </thead>
        <tbody>
          {props.groups.map((g) => (
            <tr>
              <td title={g.key}>
                <div class="hbar" style={{ width: `${(Number(g.spans) / max) * 100}%` }} />
                <span class="hbar-label">{props.label(g.key)}</span>
              </td>
              <td class="num">{num(g.spans)}</td>
              <td class="num">{num(g.errors)}</td>
              <td class="num">{num(g.inputTokens + g.outputTokens)}</td>
              <td class="num">{costs(g.cost)}</td>
              <td class="num">{g.spans - g.erased - g.undecodable > 0n ? duration(g.durationMs / Number(g.spans - g.erased - g.undecodable)) : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
