// The report of a verification, as the trace, erasure and bundle pages
// show it: one line a check, its failures and its notes. It states what
// `veritrace verify` prints (audit/bundle Report.Write), in the same words:
// the two reports must agree, notes included.

import { Checks, checkOK, type Report } from "../verify/bundle";

export interface CheckLine {
  name: string;
  passed: number;
  failures: string[];
  skipped: string;
  /** How many failed, when more than the failures listed. */
  failed?: number;
  /** Facts that do not fail the check but limit what it shows; always shown. */
  notes?: string[];
}

export function CheckList(props: { checks: CheckLine[] }) {
  return (
    <ul class="checks" data-testid="checks">
      {props.checks.map((c) => {
        const failed = c.failed ?? c.failures.length;
        const ok = failed === 0 && !c.skipped;
        const notes = c.notes ?? [];
        // A check that did not run did not pass, but found nothing wrong:
        // "--" in veritrace verify's report, not "FAIL".
        const state = c.skipped ? "not-checked" : ok ? "ok" : "failed";
        return (
          <li class={c.skipped ? "skipped" : ok ? "ok" : "bad"} data-check={c.name} data-ok={String(ok)} data-state={state}>
            <span class="mark">{c.skipped ? "–" : ok ? "✓" : "✗"}</span> <strong>{c.name}</strong>{" "}
            <span class="muted">{c.skipped ? `not checked: ${c.skipped}` : failed ? `${c.passed} ok, ${failed} failed` : `${c.passed} ok`}</span>
            {c.failures.length > 0 && (
              <ul class="failures">
                {c.failures.map((f) => (
                  <li>{f}</li>
                ))}
                {failed > c.failures.length && <li>… {failed - c.failures.length} more</li>}
              </ul>
            )}
            {notes.length > 0 && (
              <ul class="notes">
                {notes.map((n) => (
                  <li data-testid="check-note">note: {n}</li>
                ))}
              </ul>
            )}
          </li>
        );
      })}
    </ul>
  );
}

/**
 * The report's first line, as Report.Headline words it for veritrace
 * verify: what the bundle holds, by its manifest, once the manifest's
 * signature and structure are checked; otherwise that the manifest could
 * not be trusted, and why, with none of its figures (they were not
 * established).
 */
export function reportSummary(r: Report): string {
  const gate = r.checks.filter((c) => (c.name === Checks.signature || c.name === Checks.manifest) && !checkOK(c));
  const failed = gate.find((c) => c.failures.length > 0);
  if (failed) return `Bundle of unknown content: its manifest could not be trusted (${failed.name}: ${failed.failures[0]})`;
  if (gate.length) return `Bundle of unknown content: its manifest could not be trusted (${gate[0].name}: not checked: ${gate[0].skipped})`;
  if (r.format === "") return "Bundle of unknown content: its manifest could not be trusted";
  return `Bundle of ${r.entries} entries (${r.traces} traces) from ${r.origin} at tree size ${r.treeSize} (${r.format})`;
}

export function ReportSummary(props: { report: Report }) {
  return <p data-testid="bundle-summary">{reportSummary(props.report)}.</p>;
}
