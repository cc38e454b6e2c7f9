// Offline verification of an evidence bundle file, in this browser: the
// zip is read locally and never sent anywhere.

import { useState } from "preact/hooks";
import { lastBundle } from "../exporting";
import { bytesSize } from "../format";
import { pins } from "../session";
import { Checks, checkOK, reportOK, verifyBundle, type Report } from "../verify/bundle";
import { parseVerifierKey } from "../verify/note";
import { summarize } from "../verify/verdict";
import { ErrorBox, Field, KV, Notice, Page, Panel, useAction } from "../ui";
import { CheckList, ReportSummary } from "./checks";

const MAX_BUNDLE = 512 << 20;

export function BundleView() {
  const [file, setFile] = useState<{ name: string; bytes: Uint8Array } | null>(lastBundle);
  const [keyText, setKeyText] = useState(pins.logKey());
  const [pinned, setPinned] = useState("");
  const [report, setReport] = useState<Report | null>(null);
  const run = useAction(async () => {
    setReport(null);
    if (!file) throw new Error("choose a bundle file");
    const key = await parseVerifierKey(keyText);
    setReport(await verifyBundle(file.bytes, key, pinned.trim() ? pinned.replace(/\r\n/g, "\n").replace(/\n*$/, "\n") : undefined));
  });
  const choose = useAction(async (f: File | undefined) => {
    setReport(null);
    if (!f) return;
    if (f.size > MAX_BUNDLE) throw new Error(`${f.name} is ${bytesSize(f.size)}; this browser verifies bundles of at most ${bytesSize(MAX_BUNDLE)} (use veritrace verify)`);
    setFile({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) });
  });
  const choosePinned = async (f: File | undefined) => f && setPinned(await f.text());
  // The manifest's claims, shown only once its signature and structure checked out.
  const m = report && report.checks.every((c) => (c.name !== Checks.signature && c.name !== Checks.manifest) || checkOK(c)) ? report.manifest : undefined;
  return (
    <Page title="Verify an evidence bundle">
      <Panel>
        <p class="muted">
          The bundle is read and checked in this browser only; nothing is uploaded. The checks are those of <code>veritrace verify</code> (docs/BUNDLE.md):
          the manifest's signature by the log key (first: nothing else is read without it), the manifest's structure, every file's digest, the
          checkpoint's signature, each entry's header, leaf hash, payload commitment, inclusion proof and decoded content, that each header's ids
          and version references are its payload's, version references, erasures and traces, that every trace satisfies the selector, that a
          time-range bundle holds every trace of its range, the consistency proof the bundle carries and, with a checkpoint you pinned earlier,
          that the log only grew since.
        </p>
        <Field label="Bundle (.zip)">
          <input type="file" accept=".zip,application/zip" onChange={(e) => choose.run(e.currentTarget.files?.[0])} data-testid="bundle-file" />
        </Field>
        {file && (
          <p class="muted" data-testid="bundle-name">
            {file.name}, {bytesSize(file.bytes.length)}
          </p>
        )}
        <ErrorBox error={choose.error} />
        <Field label="Log public key (note verifier key, from log.pub)" wide>
          <input value={keyText} onInput={(e) => setKeyText(e.currentTarget.value)} spellcheck={false} placeholder="veritrace-1a2b3c4d+89abcdef+AbC…" data-testid="bundle-key" />
        </Field>
        <Field label="Pinned checkpoint (optional): a signed checkpoint of the same log you already hold" wide>
          <textarea rows={5} value={pinned} onInput={(e) => setPinned(e.currentTarget.value)} spellcheck={false} data-testid="bundle-pinned" />
        </Field>
        <Field label="… or load it from a file">
          <input type="file" accept=".txt,text/plain" onChange={(e) => choosePinned(e.currentTarget.files?.[0])} />
        </Field>
        <div class="buttons">
          <button class="primary" disabled={!file || !keyText.trim() || run.busy} onClick={() => run.run()} data-testid="verify-bundle">
            {run.busy ? "Verifying…" : "Verify"}
          </button>
        </div>
        <ErrorBox error={run.error} />
      </Panel>
      {report && (
        <Panel title="Report" testid="bundle-report">
          <Notice kind={reportOK(report) ? "ok" : "bad"} testid={reportOK(report) ? "bundle-verified" : "bundle-not-verified"}>
            {reportOK(report)
              ? "VERIFIED: every check passed"
              : `NOT VERIFIED: ${summarize(report.checks)}`}
          </Notice>
          <ReportSummary report={report} />
          <CheckList checks={report.checks} />
          {m && (
            <>
              <h3>What the manifest says it holds</h3>
              <KV
                rows={[
                  ["Created", m.created_at],
                  ["Selector", Object.entries(m.selector).map(([k, v]) => `${k}=${v}`).join(" ")],
                  ["Traces", m.traces.join(", ")],
                  ["Consistency proof from size", m.consistency ? String(m.consistency.old_size) : "none"],
                ]}
              />
              {!reportOK(report) && <Notice kind="warn">The manifest is shown as it is; since the bundle did not verify, do not rely on it.</Notice>}
            </>
          )}
        </Panel>
      )}
    </Page>
  );
}
