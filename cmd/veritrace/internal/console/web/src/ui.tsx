// Small building blocks shared by the views. Text is always rendered as
// text (never as HTML): trace content is untrusted.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { errorText } from "./api";

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  return (
    <section class="page">
      <header class="page-head">
        <h1>{props.title}</h1>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

export function Panel(props: { title?: string; children: ComponentChildren; class?: string; testid?: string }) {
  return (
    <div class={"panel " + (props.class ?? "")} data-testid={props.testid}>
      {props.title && <h2>{props.title}</h2>}
      {props.children}
    </div>
  );
}

export function ErrorBox(props: { error: unknown }) {
  if (!props.error) return null;
  return (
    <div class="error" role="alert">
      {errorText(props.error)}
    </div>
  );
}

export function Notice(props: { children: ComponentChildren; kind?: "info" | "warn" | "ok" | "bad"; testid?: string }) {
  return (
    <div class={"notice " + (props.kind ?? "info")} data-testid={props.testid}>
      {props.children}
    </div>
  );
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string; wide?: boolean }) {
  return (
    <label class={"field" + (props.wide ? " wide" : "")}>
      <span class="label">{props.label}</span>
      {props.children}
      {props.hint && <span class="hint">{props.hint}</span>}
    </label>
  );
}

export function Badge(props: { children: ComponentChildren; tone?: string; title?: string }) {
  return (
    <span class={"badge " + (props.tone ?? "")} title={props.title}>
      {props.children}
    </span>
  );
}

/** A hex id shown short, whole on hover and copyable. */
export function Id(props: { value: string; n?: number }) {
  const n = props.n ?? 12;
  return (
    <code class="id" title={props.value}>
      {props.value.length > n ? props.value.slice(0, n) + "…" : props.value}
    </code>
  );
}

export function Loading(props: { what?: string }) {
  return <div class="loading">Loading{props.what ? " " + props.what : ""}…</div>;
}

/** Runs an async action, tracking whether it runs and how it failed. */
export function useAction<A extends unknown[]>(fn: (...args: A) => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (...args: A) => {
    setBusy(true);
    setError(null);
    try {
      await fn(...args);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, setError };
}

/** Saves bytes as a file through a temporary object URL. */
export function download(bytes: Uint8Array | string, name: string, type: string) {
  const blob = new Blob([bytes as BlobPart], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function Pre(props: { text: string; testid?: string }) {
  return (
    <pre class="content" data-testid={props.testid}>
      {props.text}
    </pre>
  );
}

export function KV(props: { rows: [string, ComponentChildren][] }) {
  const rows = props.rows.filter(([, v]) => v !== undefined && v !== null && v !== "");
  if (rows.length === 0) return null;
  return (
    <dl class="kv">
      {rows.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </>
      ))}
    </dl>
  );
}

/** What a pseudonym is, for titles and explanations (docs/ACCESS.md, docs/RETENTION.md). */
export const pseudonymHelp =
  "A pseudonym names a data subject or a session in records kept for years (the access log, holds) instead of its id: " +
  "a keyed MAC of the id under a key of that subject or session alone. While the subject exists, the server can tell " +
  "which records concern it; its erasure destroys the key, and then nothing links the pseudonym to anyone.";

/** A subject's or session's pseudonym as the access log and holds name it, explained on hover. */
export function Pseudonym(props: { value: string }) {
  const v = props.value;
  const title =
    v === "none"
      ? "pseudonym:none (records of earlier builds): the id had no data in the tenant when this was recorded"
      : v === "unavailable"
        ? "pseudonym:unavailable: the id's pseudonym key could not be read when this was recorded"
        : pseudonymHelp;
  return (
    <code class="pseudonym" title={title} data-testid="pseudonym">
      pseudonym:{v}
    </code>
  );
}
