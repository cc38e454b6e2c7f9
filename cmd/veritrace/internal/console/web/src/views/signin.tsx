import { useState } from "preact/hooks";
import { errorText, makeApi } from "../api";
import type { WhoAmIResponse } from "../gen/veritrace/v1/identity_pb";
import { linkClick } from "../router";
import { Field, Notice } from "../ui";

export function SignIn(props: { onSignIn: (key: string, me: WhoAmIResponse) => void; error: string }) {
  const [key, setKey] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(props.error);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) return;
    setBusy(true);
    setError("");
    try {
      const me = await makeApi(k).identity.whoAmI({});
      setKey("");
      props.onSignIn(k, me);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="signin">
      <form onSubmit={submit} class="panel" autocomplete="off">
        <h1>Sign in</h1>
        <p class="muted">
          Sign in with your Veritrace API key. It is kept only in this tab's session storage and sent only to this server, in the
          Authorization header of each request; closing the tab forgets it.
        </p>
        <Field label="API key">
          <input
            type="password"
            name="api-key"
            autocomplete="off"
            spellcheck={false}
            placeholder="vtk_…"
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            data-testid="api-key"
          />
        </Field>
        {error && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" class="primary" disabled={busy || !key.trim()} data-testid="sign-in">
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <Notice>
        Have an evidence bundle? You can{" "}
        <a href="/ui/verify" onClick={linkClick("/verify")}>
          verify it in this browser
        </a>{" "}
        without signing in: nothing is sent to the server.
      </Notice>
    </div>
  );
}
