// Admin views: API keys (the token is shown once) and tenants.

import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { useCtx } from "../context";
import { Role, type ApiKey } from "../gen/veritrace/v1/admin_pb";
import { roleNames, time } from "../format";
import { Badge, ErrorBox, Field, Notice, Page, Panel, useAction } from "../ui";

export function KeysView() {
  const { api, me } = useCtx();
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [tenants, setTenants] = useState<string[]>([]);
  const [role, setRole] = useState<Role>(Role.AUDITOR);
  const [keyTenants, setKeyTenants] = useState("default");
  const [label, setLabel] = useState("");
  const [expires, setExpires] = useState("");
  const [created, setCreated] = useState<{ id: string; token: string } | null>(null);
  const load = useAction(async () => {
    setKeys((await api.admin.listKeys({})).keys);
    setTenants((await api.admin.listTenants({})).tenants);
  });
  useEffect(() => {
    load.run();
  }, []);
  const create = useAction(async () => {
    const r = await api.admin.createKey({
      role, label: label.trim(), tenants: keyTenants.split(/[\s,]+/).filter(Boolean),
      expiresAt: expires ? timestampFromDate(new Date(expires + ":00Z")) : undefined,
    });
    setCreated({ id: r.key?.id ?? "", token: r.token });
    setLabel("");
    await load.run();
  });
  const revoke = useAction(async (id: string) => {
    await api.admin.revokeKey({ id });
    await load.run();
  });
  return (
    <Page title="API keys">
      <form
        class="panel filters"
        onSubmit={(e) => {
          e.preventDefault();
          create.run();
        }}
        data-testid="key-form"
      >
        <h2 class="full">Create a key</h2>
        <Field label="Role">
          <select value={String(role)} onChange={(e) => setRole(Number(e.currentTarget.value))} name="role">
            {[Role.INGESTER, Role.AUDITOR, Role.COMPLIANCE_OFFICER, Role.ADMIN].map((r) => (
              <option value={String(r)}>{roleNames[r]}</option>
            ))}
          </select>
        </Field>
        <Field label="Tenants" hint={`names separated by commas, or * for every tenant; existing: ${tenants.join(", ")}`}>
          <input value={keyTenants} onInput={(e) => setKeyTenants(e.currentTarget.value)} name="key-tenants" />
        </Field>
        <Field label="Label">
          <input value={label} onInput={(e) => setLabel(e.currentTarget.value)} name="label" placeholder="external audit 2026" />
        </Field>
        <Field label="Expires (UTC, optional)">
          <input type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
        </Field>
        <div class="buttons">
          <button type="submit" class="primary" disabled={create.busy} data-testid="create-key">
            Create key
          </button>
        </div>
      </form>
      <ErrorBox error={create.error} />
      {created && (
        <Notice kind="warn" testid="new-token">
          Key {created.id} created. Its token is shown once, now; store it where only its holder can read it:
          <pre class="content token">{created.token}</pre>
          <button onClick={() => setCreated(null)}>I have stored it</button>
        </Notice>
      )}
      <Panel title="Keys" testid="keys">
        <ErrorBox error={load.error} />
        {keys && (
          <table class="grid">
            <thead>
              <tr>
                <th>Key id</th>
                <th>Role</th>
                <th>Tenants</th>
                <th>Label</th>
                <th>Created</th>
                <th>Expires</th>
                <th>State</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr data-testid="key-row">
                  <td>
                    <code>{k.id}</code>
                    {k.id === me.key?.id && <Badge>you</Badge>}
                  </td>
                  <td>{roleNames[k.role]}</td>
                  <td>{k.tenants.join(", ")}</td>
                  <td>{k.label}</td>
                  <td>
                    {time(k.createdAt)}
                    {k.createdBy && <span class="muted"> by {k.createdBy}</span>}
                  </td>
                  <td>{time(k.expiresAt)}</td>
                  <td>{k.revokedAt ? <Badge tone="bad">revoked {time(k.revokedAt)}</Badge> : <Badge tone="ok">active</Badge>}</td>
                  <td>
                    {!k.revokedAt && k.id !== me.key?.id && (
                      <button onClick={() => revoke.run(k.id)} disabled={revoke.busy}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <ErrorBox error={revoke.error} />
      </Panel>
    </Page>
  );
}

export function TenantsView() {
  const { api } = useCtx();
  const [tenants, setTenants] = useState<string[] | null>(null);
  const [name, setName] = useState("");
  const [msg, setMsg] = useState("");
  const load = useAction(async () => setTenants((await api.admin.listTenants({})).tenants));
  useEffect(() => {
    load.run();
  }, []);
  const create = useAction(async () => {
    const r = await api.admin.createTenant({ name: name.trim() });
    setMsg(r.created ? `Tenant ${r.name} created.` : `Tenant ${r.name} existed already.`);
    setName("");
    await load.run();
  });
  return (
    <Page title="Tenants">
      <form
        class="panel filters"
        onSubmit={(e) => {
          e.preventDefault();
          create.run();
        }}
      >
        <Field label="New tenant" hint="1 to 63 of a-z 0-9 . _ -, starting with a letter or digit">
          <input value={name} onInput={(e) => setName(e.currentTarget.value)} name="tenant-name" required />
        </Field>
        <div class="buttons">
          <button type="submit" class="primary" disabled={create.busy}>
            Create tenant
          </button>
        </div>
      </form>
      <ErrorBox error={create.error} />
      {msg && <Notice kind="ok">{msg}</Notice>}
      <Panel title="Tenants" testid="tenants">
        <ErrorBox error={load.error} />
        {tenants && (
          <ul class="plain">
            {tenants.map((t) => (
              <li>
                <code>{t}</code> {t === "system" && <span class="muted">the server-wide access log</span>}
              </li>
            ))}
          </ul>
        )}
      </Panel>
    </Page>
  );
}
