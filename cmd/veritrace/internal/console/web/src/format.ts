// Formatting for people. Times are shown in UTC with an explicit "Z", as
// the ledger records them.

import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { toHex } from "./verify/bytes";
import type { RefusalSummary } from "./gen/veritrace/v1/access_pb";
import type { Cost } from "./gen/veritrace/v1/audit_pb";
import { Role } from "./gen/veritrace/v1/admin_pb";
import { SpanKind } from "./gen/veritrace/v1/span_pb";

export const roleNames: Record<number, string> = {
  [Role.INGESTER]: "ingester",
  [Role.AUDITOR]: "auditor",
  [Role.COMPLIANCE_OFFICER]: "compliance officer",
  [Role.ADMIN]: "admin",
};

export function hex(b: Uint8Array | undefined): string {
  return b ? toHex(b) : "";
}

export function time(t: Timestamp | undefined): string {
  if (!t) return "";
  return timestampDate(t).toISOString().replace(".000Z", "Z");
}

export function ms(t: Timestamp | undefined): number | undefined {
  return t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : undefined;
}

export function duration(msecs: number | undefined): string {
  if (msecs === undefined || !isFinite(msecs)) return "";
  if (msecs < 1) return `${Math.round(msecs * 1000)} µs`;
  if (msecs < 1000) return `${Math.round(msecs)} ms`;
  if (msecs < 60_000) return `${(msecs / 1000).toFixed(2)} s`;
  return `${Math.floor(msecs / 60_000)} min ${Math.round((msecs % 60_000) / 1000)} s`;
}

export function num(n: number | bigint | undefined): string {
  if (n === undefined) return "";
  return Number(n).toLocaleString("en-US");
}

export function costs(cs: Cost[] | undefined): string {
  if (!cs || cs.length === 0) return "";
  return cs.map((c) => money(c.amount, c.currency)).join(" + ");
}

export function money(amount: number, currency: string): string {
  const digits = amount !== 0 && Math.abs(amount) < 0.01 ? 4 : 2;
  return `${amount.toFixed(digits)}${currency ? " " + currency : ""}`;
}

export function kindName(k: SpanKind | number): string {
  const n = SpanKind[k as SpanKind];
  return n ? n.toLowerCase() : String(k);
}

export function enumName(s: string | undefined, prefix: string): string {
  return (s ?? "").replace(prefix, "").toLowerCase().replace(/_/g, " ");
}

/** The first 8 hex digits of an id, for tables; the whole id goes in a title. */
export function short(h: string, n = 8): string {
  return h.length > n ? h.slice(0, n) + "…" : h;
}

export function bytesSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * A refusal summary of the access log on one line (docs/ACCESS.md,
 * "Refusals"): how many refusals it stands for, when, and every list, each
 * with the count of what did not fit. Targets are free text, so quoted.
 */
export function refusalSummary(s: RefusalSummary): string {
  const list = (items: string[], others: number) => (items.join(", ") || "-") + (others > 0 ? ` and ${others} more` : "");
  return (
    `${num(s.count)} more refused from ${time(s.firstTime)} to ${time(s.lastTime)}; ` +
    `keys ${list(s.keyIds, s.otherKeyIds)}; targets ${list(s.targets.map((t) => JSON.stringify(t)), s.otherTargets)}; ` +
    `procedures ${list(s.procedures.map((p) => p.replace("/veritrace.v1.", "")), s.otherProcedures)}; codes ${list(s.codes, 0)}; ` +
    `tenants ${list(s.tenants, s.otherTenants)}; peers ${list(s.peers, s.otherPeers)}`
  );
}

/** A piece of an access-log target: plain text, or a subject or session named by its pseudonym. */
export type TargetPart = string | { field: "subject" | "session"; pseudonym: string };

// How targets name subjects and sessions (docs/ACCESS.md): "pseudonym:"
// and 24 hex digits, or "none" (an id with no data in the tenant) or
// "unavailable" (its key could not be read).
const pseudonymRE = /\b(subject|session)=pseudonym:([0-9a-f]{24}|none|unavailable)\b/g;

/**
 * Splits an access-log target into text and the pseudonyms it names, so
 * that the console can mark them and say what they are. Everything else
 * stays text, as recorded.
 */
export function targetParts(target: string): TargetPart[] {
  const parts: TargetPart[] = [];
  let at = 0;
  for (const m of target.matchAll(pseudonymRE)) {
    const i = m.index ?? 0;
    parts.push(target.slice(at, i + m[1].length + 1)); // up to "subject=" or "session="
    parts.push({ field: m[1] as "subject" | "session", pseudonym: m[2] });
    at = i + m[0].length;
  }
  if (at < target.length) parts.push(target.slice(at));
  return parts;
}
