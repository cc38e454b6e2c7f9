// The verdict line of a verification report, in the words of the Go
// verifier (audit/bundle: Report.Summary for `veritrace verify`,
// ReceiptReport.Verdict for `veritrace verify-receipt`): which checks
// failed and which were not checked, and why. A check that did not run is
// never called failed; it does not pass either.

/** A check as the verdict sees it: how many times it failed, and why it did not run, if it did not. */
export interface CheckOutcome {
  name: string;
  failed: number;
  skipped: string;
}

/**
 * Which checks failed and which were not checked ("bundle signature
 * failed; 15 other checks not checked (the manifest is not signed by the
 * key)"), or "every check passed", as Go's summarize.
 */
export function summarize(checks: CheckOutcome[]): string {
  const failed: string[] = [];
  const notRun: string[] = [];
  let why = "";
  for (const c of checks) {
    if (c.skipped !== "") {
      notRun.push(c.name);
      if (why === "") why = c.skipped;
      else if (why !== c.skipped) why = "reasons above";
    } else if (c.failed > 0) {
      failed.push(c.name);
    }
  }
  const parts: string[] = [];
  if (failed.length > 0) parts.push(`${failed.join(", ")} failed`);
  if (notRun.length > 0 && notRun.length <= 3) parts.push(`${notRun.join(", ")} not checked (${why})`);
  else if (notRun.length > 0 && failed.length > 0) parts.push(`${notRun.length} other checks not checked (${why})`);
  else if (notRun.length > 0) parts.push(`${notRun.length} checks not checked (${why})`);
  return parts.length === 0 ? "every check passed" : parts.join("; ");
}
