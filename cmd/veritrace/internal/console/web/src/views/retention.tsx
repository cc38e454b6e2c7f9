// The tenant's retention policy: floor, default rule and rules with their
// modes (governance: may be shortened with a reason; compliance: may only
// be extended), and expiry sweeps on demand.

import { clone } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useState } from "preact/hooks";
import { useCtx } from "../context";
import { RetentionMode, RetentionPolicySchema, type RetentionPolicy, type RetentionRule } from "../gen/veritrace/v1/retention_pb";
import { SpanKind } from "../gen/veritrace/v1/span_pb";
import { enumName, kindName, time } from "../format";
import { Badge, ErrorBox, Field, KV, Notice, Page, Panel, useAction } from "../ui";

const KINDS = Object.values(SpanKind).filter((k): k is SpanKind => typeof k === "number" && k !== 0);

function ruleText(r: RetentionRule): string {
  const m = r.match;
  const parts: string[] = [];
  if (m?.kinds.length) parts.push("kind " + m.kinds.map(kindName).join(" or "));
  if (m?.errors !== undefined) parts.push(m.errors ? "errors" : "no errors");
  for (const [k, v] of Object.entries(m?.attributes ?? {})) parts.push(`${k}=${v}`);
  return parts.join(", ") || "every span";
}

export function RetentionView() {
  const { api, tenant } = useCtx();
  const [policy, setPolicy] = useState<RetentionPolicy | null>(null);
  const [draft, setDraft] = useState<RetentionPolicy | null>(null);
  const [reason, setReason] = useState("");
  const [saved, setSaved] = useState("");
  const [swept, setSwept] = useState("");
  const load = useAction(async () => {
    const p = (await api.retention.getRetention({})).policy ?? null;
    setPolicy(p);
    setDraft(p ? clone(RetentionPolicySchema, p) : null);
  });
  useEffect(() => {
    load.run();
  }, []);
  const save = useAction(async () => {
    if (!draft) return;
    const r = await api.retention.setRetention({ policy: draft, reason: reason.trim() });
    // The server records nothing for a policy whose rules it already has.
    setSaved(
      r.policy?.revision === draft.revision
        ? `Nothing changed: the policy in force is revision ${r.policy?.revision}${r.index ? ` (ledger entry ${r.index})` : ""}; nothing was recorded.`
        : `Saved revision ${r.policy?.revision} (ledger entry ${r.index}).`,
    );
    setReason("");
    setPolicy(r.policy ?? null);
    setDraft(r.policy ? clone(RetentionPolicySchema, r.policy) : null);
  });
  const sweep = useAction(async () => {
    const r = await api.retention.sweep({});
    setSwept(`Expired ${r.expired} entries, ${r.held} held${r.tombstoneIndex !== undefined ? `; tombstone at entry ${r.tombstoneIndex}` : ""}.`);
  });
  const update = (f: (p: RetentionPolicy) => void) => {
    if (!draft) return;
    const p = clone(RetentionPolicySchema, draft);
    f(p);
    setDraft(p);
  };
  return (
    <Page title={`Retention · ${tenant}`}>
      <ErrorBox error={load.error} />
      {policy && (
        <Panel title="Policy in force" testid="retention-policy">
          <KV
            rows={[
              ["High-risk AI system", policy.highRisk ? "yes (floor at least 183 days, EU AI Act Art. 19, 26)" : "no"],
              ["Floor", `${policy.floorDays} days`],
              ["Default rule", policy.defaultRule ? `${policy.defaultRule.days} days, ${enumName(RetentionMode[policy.defaultRule.mode], "")}` : ""],
              ["Revision", policy.revision ? `${policy.revision}, by ${policy.updatedBy} at ${time(policy.updatedAt)}${policy.reason ? ": " + policy.reason : ""}` : "default (never set)"],
            ]}
          />
          {policy.rules.length > 0 ? (
            <table class="grid">
              <thead>
                <tr>
                  <th>Class</th>
                  <th class="num">Days</th>
                  <th>Mode</th>
                  <th>Matches</th>
                </tr>
              </thead>
              <tbody>
                {policy.rules.map((r) => (
                  <tr>
                    <td>
                      <code>{r.class}</code>
                    </td>
                    <td class="num">{r.days}</td>
                    <td>
                      <Badge tone={r.mode === RetentionMode.COMPLIANCE ? "warn" : ""}>{enumName(RetentionMode[r.mode], "")}</Badge>
                    </td>
                    <td>{ruleText(r)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Notice>No rules: every span gets the default rule.</Notice>
          )}
        </Panel>
      )}
      {draft && (
        <Panel title="Change the policy" testid="retention-edit">
          <p class="muted">
            Rules are tried in order; the first that matches a span gives its retention class, fixed when the span is appended. A rule in
            compliance mode can only be extended; shortening a governance rule or the floor needs a reason. Every change is a ledger entry.
          </p>
          <div class="filters">
            <label class="check">
              <input type="checkbox" checked={draft.highRisk} onChange={(e) => update((p) => (p.highRisk = e.currentTarget.checked))} /> high-risk AI system
            </label>
            <Field label="Floor (days)">
              <input type="number" min={0} value={draft.floorDays} onInput={(e) => update((p) => (p.floorDays = Number(e.currentTarget.value)))} name="floor" />
            </Field>
            <Field label="Default rule (days)">
              <input type="number" min={1} value={draft.defaultRule?.days ?? 0} onInput={(e) => update((p) => p.defaultRule && (p.defaultRule.days = Number(e.currentTarget.value)))} name="default-days" />
            </Field>
            <Field label="Default rule mode">
              <ModeSelect value={draft.defaultRule?.mode ?? RetentionMode.GOVERNANCE} onChange={(m) => update((p) => p.defaultRule && (p.defaultRule.mode = m))} />
            </Field>
          </div>
          {draft.rules.map((r, i) => (
            <div class="rule filters">
              <Field label="Class">
                <input value={r.class} onInput={(e) => update((p) => (p.rules[i].class = e.currentTarget.value))} />
              </Field>
              <Field label="Days">
                <input type="number" min={1} value={r.days} onInput={(e) => update((p) => (p.rules[i].days = Number(e.currentTarget.value)))} />
              </Field>
              <Field label="Mode">
                <ModeSelect value={r.mode} onChange={(m) => update((p) => (p.rules[i].mode = m))} />
              </Field>
              <Field label="Span kinds">
                <select
                  multiple
                  size={3}
                  onChange={(e) => update((p) => { p.rules[i].match ??= { $typeName: "veritrace.v1.RuleMatch", kinds: [], attributes: {} }; p.rules[i].match!.kinds = [...e.currentTarget.selectedOptions].map((o) => Number(o.value)); })}
                >
                  {KINDS.map((k) => (
                    <option value={String(k)} selected={r.match?.kinds.includes(k)}>
                      {kindName(k)}
                    </option>
                  ))}
                </select>
              </Field>
              <Field label="Status">
                <select
                  value={r.match?.errors === undefined ? "" : String(r.match.errors)}
                  onChange={(e) => update((p) => { p.rules[i].match ??= { $typeName: "veritrace.v1.RuleMatch", kinds: [], attributes: {} }; const v = e.currentTarget.value; p.rules[i].match!.errors = v === "" ? undefined : v === "true"; })}
                >
                  <option value="">any</option>
                  <option value="true">errors</option>
                  <option value="false">no errors</option>
                </select>
              </Field>
              <Field label="Attributes (key=value, one a line)">
                <textarea
                  rows={2}
                  value={Object.entries(r.match?.attributes ?? {}).map(([k, v]) => `${k}=${v}`).join("\n")}
                  onChange={(e) => update((p) => {
                    p.rules[i].match ??= { $typeName: "veritrace.v1.RuleMatch", kinds: [], attributes: {} };
                    p.rules[i].match!.attributes = Object.fromEntries(e.currentTarget.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => [l.slice(0, l.indexOf("=") < 0 ? l.length : l.indexOf("=")), l.indexOf("=") < 0 ? "" : l.slice(l.indexOf("=") + 1)]));
                  })}
                />
              </Field>
              <div class="buttons">
                <button type="button" onClick={() => update((p) => p.rules.splice(i, 1))}>
                  Remove rule
                </button>
              </div>
            </div>
          ))}
          <div class="buttons">
            <button type="button" onClick={() => update((p) => p.rules.push({ $typeName: "veritrace.v1.RetentionRule", class: "", days: 365, mode: RetentionMode.GOVERNANCE, match: { $typeName: "veritrace.v1.RuleMatch", kinds: [], attributes: {} } }))}>
              Add rule
            </button>
          </div>
          <Field label="Reason (required when a period or the floor gets shorter)" wide>
            <input value={reason} onInput={(e) => setReason(e.currentTarget.value)} name="retention-reason" />
          </Field>
          <div class="buttons">
            <button class="primary" onClick={() => save.run()} disabled={save.busy} data-testid="save-retention">
              Save policy
            </button>
            <button onClick={() => policy && setDraft(clone(RetentionPolicySchema, policy))}>Discard changes</button>
          </div>
          <ErrorBox error={save.error} />
          {save.error instanceof ConnectError && save.error.code === Code.Aborted && (
            // Changed by someone else since this page showed it: nothing was recorded.
            <div class="buttons">
              <button
                onClick={() => {
                  save.setError(null);
                  load.run();
                }}
                data-testid="reload-retention"
              >
                Show the policy in force, and edit that
              </button>
            </div>
          )}
          {saved && <Notice kind="ok">{saved}</Notice>}
        </Panel>
      )}
      <Panel title="Expiry">
        <p class="muted">The server sweeps expired payloads periodically (--sweep-interval). Sweep now to expire what is past its retention at once; held entries are kept.</p>
        <button onClick={() => sweep.run()} disabled={sweep.busy} data-testid="sweep">
          Sweep now
        </button>
        {swept && <Notice kind="ok">{swept}</Notice>}
        <ErrorBox error={sweep.error} />
      </Panel>
    </Page>
  );
}

function ModeSelect(props: { value: RetentionMode; onChange: (m: RetentionMode) => void }) {
  return (
    <select value={String(props.value)} onChange={(e) => props.onChange(Number(e.currentTarget.value))}>
      <option value={String(RetentionMode.GOVERNANCE)}>governance</option>
      <option value={String(RetentionMode.COMPLIANCE)}>compliance</option>
    </select>
  );
}
