// Trace search: every condition QueryTraces knows, paginated, with a
// summary of each trace, and export of the selection as a bundle.

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { useCtx } from "../context";
import { ExportPanel, type QueryInit } from "../exporting";
import { TraceQuerySchema, type TraceSummary } from "../gen/veritrace/v1/audit_pb";
import { SpanKind } from "../gen/veritrace/v1/span_pb";
import { VersionKind, type Version } from "../gen/veritrace/v1/version_pb";
import { costs, duration, hex, kindName, ms, num, time } from "../format";
import { linkClick, navigate } from "../router";
import { forgetOnSignOut } from "../session";
import { fromHex } from "../verify/bytes";
import { Badge, ErrorBox, Field, Id, Notice, Page, Panel, useAction } from "../ui";

interface Filters {
  traceId: string;
  subject: string;
  session: string;
  from: string; // datetime-local, read as UTC
  to: string;
  model: string;
  version: string;
  kind: string;
  errors: boolean;
}

const empty: Filters = { traceId: "", subject: "", session: "", from: "", to: "", model: "", version: "", kind: "", errors: false };

// Filters and results survive navigating to a trace and back (in memory only).
const fresh = { filters: empty, query: null, pages: [""], page: 0 };
let saved: { filters: Filters; query: QueryInit | null; pages: string[]; page: number } = fresh;
forgetOnSignOut(() => (saved = fresh));

function utc(v: string) {
  return v ? timestampFromDate(new Date(v + (v.length === 16 ? ":00Z" : "Z"))) : undefined;
}

function toQuery(f: Filters): QueryInit {
  if (f.traceId && !/^[0-9a-f]{32}$/.test(f.traceId)) throw new Error("trace id: 32 lowercase hex digits");
  return {
    traceId: f.traceId ? fromHex(f.traceId) : new Uint8Array(0),
    subjectId: f.subject.trim(),
    sessionId: f.session.trim(),
    from: utc(f.from),
    to: utc(f.to),
    model: f.model.trim(),
    versionId: f.version,
    kind: f.kind ? Number(f.kind) : 0,
    errorsOnly: f.errors,
  };
}

export function SearchView() {
  const { api, can } = useCtx();
  const [filters, setFilters] = useState<Filters>(saved.filters);
  const [query, setQuery] = useState<QueryInit | null>(saved.query);
  const [pages, setPages] = useState<string[]>(saved.pages); // page tokens; pages[i] starts page i
  const [page, setPage] = useState(saved.page);
  const [rows, setRows] = useState<TraceSummary[] | null>(null);
  const [versions, setVersions] = useState<Version[]>([]);
  const search = useAction(async (q: QueryInit, token: string) => {
    const r = await api.audit.queryTraces({ query: create(TraceQuerySchema, q), pageSize: 25, pageToken: token, withSummaries: true });
    setRows(r.traces);
    setPages((ps) => {
      const next = ps.slice(0, page + 1);
      if (r.nextPageToken) next[page + 1] = r.nextPageToken;
      return next;
    });
  });

  useEffect(() => {
    saved = { filters, query, pages, page };
  }, [filters, query, pages, page]);
  useEffect(() => {
    if (query) search.run(query, pages[page] ?? "");
  }, [query, page]);
  useEffect(() => {
    api.ingest.listVersions({ pageSize: 1000 }).then((r) => setVersions(r.versions), () => setVersions([]));
  }, []);

  const set = (k: keyof Filters) => (e: Event) => {
    const t = e.currentTarget as HTMLInputElement;
    setFilters({ ...filters, [k]: t.type === "checkbox" ? t.checked : t.value });
  };
  const submit = (e: Event) => {
    e.preventDefault();
    try {
      const q = toQuery(filters);
      search.setError(null);
      setPages([""]);
      setPage(0);
      setQuery({ ...q });
    } catch (err) {
      search.setError(err);
    }
  };
  const canExport = query && (query.traceId?.length || query.subjectId || query.sessionId || query.from || query.to);

  return (
    <Page title="Traces">
      <form class="panel filters" onSubmit={submit} data-testid="search-form">
        <Field label="Subject (end user)">
          <input value={filters.subject} onInput={set("subject")} name="subject" placeholder="customer-42" />
        </Field>
        <Field label="Session">
          <input value={filters.session} onInput={set("session")} name="session" />
        </Field>
        <Field label="Trace id">
          <input value={filters.traceId} onInput={set("traceId")} name="trace" placeholder="32 hex digits" spellcheck={false} />
        </Field>
        <Field label="From (UTC)">
          <input type="datetime-local" value={filters.from} onInput={set("from")} name="from" step={1} />
        </Field>
        <Field label="To (UTC)">
          <input type="datetime-local" value={filters.to} onInput={set("to")} name="to" step={1} />
        </Field>
        <Field label="Model">
          <input value={filters.model} onInput={set("model")} name="model" placeholder="gpt-4o" />
        </Field>
        <Field label="Version in force">
          <select value={filters.version} onChange={set("version")} name="version">
            <option value="">any</option>
            {versions.map((v) => (
              <option value={v.id}>
                {VersionKind[v.kind].toLowerCase()} {v.name} {v.label}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Span kind">
          <select value={filters.kind} onChange={set("kind")} name="kind">
            <option value="">any</option>
            {Object.values(SpanKind)
              .filter((k): k is SpanKind => typeof k === "number" && k !== 0)
              .map((k) => (
                <option value={String(k)}>{kindName(k)}</option>
              ))}
          </select>
        </Field>
        <label class="check">
          <input type="checkbox" checked={filters.errors} onChange={set("errors")} name="errors" /> errors only
        </label>
        <div class="buttons">
          <button type="submit" class="primary" data-testid="search">
            Search
          </button>
          <button type="button" onClick={() => { setFilters(empty); setQuery(null); setRows(null); }}>
            Clear
          </button>
        </div>
      </form>
      <ErrorBox error={search.error} />
      {rows && (
        <Panel title={`Results, page ${page + 1}`} testid="results">
          {rows.length === 0 ? (
            <Notice>No trace on this page matches. {pages[page + 1] ? "The scan limit was reached; later pages may hold matches." : ""}</Notice>
          ) : (
            <table class="grid">
              <thead>
                <tr>
                  <th>Trace</th>
                  <th>Appended (UTC)</th>
                  <th>Root span</th>
                  <th class="num">Spans</th>
                  <th>Models</th>
                  <th class="num">Tokens in / out</th>
                  <th class="num">Cost</th>
                  <th class="num">Duration</th>
                  <th>Status</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => {
                  const id = hex(r.traceId);
                  const s = r.stats;
                  const d = s?.startTime && s.endTime ? ms(s.endTime)! - ms(s.startTime)! : undefined;
                  return (
                    <tr class="clickable" onClick={() => navigate("/traces/" + id)} data-testid="trace-row">
                      <td>
                        <a href={"/ui/traces/" + id} onClick={linkClick("/traces/" + id)}>
                          <Id value={id} />
                        </a>
                      </td>
                      <td>{time(r.appendedAt)}</td>
                      <td>{s?.rootName}</td>
                      <td class="num">
                        {num(s?.spans)}
                        {s?.partial ? "+" : ""}
                      </td>
                      <td>{s?.models.join(", ")}</td>
                      <td class="num">
                        {num(s?.inputTokens)} / {num(s?.outputTokens)}
                      </td>
                      <td class="num">{costs(s?.cost)}</td>
                      <td class="num">{duration(d)}</td>
                      <td>
                        {s && s.errors > 0 ? <Badge tone="bad">{s.errors} error{s.errors > 1 ? "s" : ""}</Badge> : <Badge tone="ok">ok</Badge>}
                        {s && s.erased > 0 && <Badge tone="muted">{s.erased} erased</Badge>}
                        {s && s.undecodable > 0 && <Badge tone="warn">{s.undecodable} undecodable</Badge>}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
          <div class="pager">
            <button disabled={page === 0 || search.busy} onClick={() => setPage(page - 1)}>
              ← Previous
            </button>
            <span>page {page + 1}</span>
            <button disabled={!pages[page + 1] || search.busy} onClick={() => setPage(page + 1)} data-testid="next-page">
              Next →
            </button>
          </div>
        </Panel>
      )}
      {query && can("export_evidence") &&
        (canExport ? (
          <ExportPanel query={query} what={filters.traceId || filters.subject || filters.session || "selection"} label="Export bundle of this selection" testid="export"
            text="Export every trace this search selects as a signed evidence bundle (docs/BUNDLE.md)." />
        ) : (
          <Notice>To export, name a subject, a session, a trace id or a time range.</Notice>
        ))}
    </Page>
  );
}
