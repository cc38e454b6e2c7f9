// The console's shell: sign-in, the key's identity and tenant, navigation
// by permission, and the views.

import { useEffect, useMemo, useState } from "preact/hooks";
import { errorText, isUnauthenticated, makeApi } from "./api";
import { AppContext, type Ctx, type Permission } from "./context";
import { roleNames } from "./format";
import type { WhoAmIResponse } from "./gen/veritrace/v1/identity_pb";
import { linkClick, navigate, useRoute } from "./router";
import { session } from "./session";
import { ErrorBox, Loading, Notice, Page } from "./ui";
import { AccessLogView } from "./views/accesslog";
import { BundleView } from "./views/bundle";
import { ErasureView } from "./views/erasure";
import { HoldsView } from "./views/holds";
import { KeysView, TenantsView } from "./views/admin";
import { OverviewView } from "./views/overview";
import { RetentionView } from "./views/retention";
import { SearchView } from "./views/search";
import { SignIn } from "./views/signin";
import { TraceView } from "./views/trace";

interface NavItem {
  path: string;
  label: string;
  perm: Permission | null; // null: anyone signed in
  group: string;
}

const NAV: NavItem[] = [
  { path: "/overview", label: "Overview", perm: "read_entries", group: "Audit" },
  { path: "/traces", label: "Traces", perm: "read_entries", group: "Audit" },
  { path: "/access-log", label: "Access log", perm: "read_access_log", group: "Audit" },
  { path: "/verify", label: "Verify a bundle", perm: null, group: "Audit" },
  { path: "/retention", label: "Retention", perm: "manage_retention", group: "Compliance" },
  { path: "/holds", label: "Legal holds", perm: "manage_holds", group: "Compliance" },
  { path: "/erasure", label: "Erasure", perm: "erase_data", group: "Compliance" },
  { path: "/keys", label: "API keys", perm: "manage_keys", group: "Admin" },
  { path: "/tenants", label: "Tenants", perm: "manage_tenants", group: "Admin" },
];

/** The view a path shows, and the permission it needs. */
function route(path: string): { perm: Permission | null; view: () => preact.JSX.Element } | null {
  const trace = path.match(/^\/traces\/([0-9a-f]{32})$/);
  if (trace) return { perm: "read_entries", view: () => <TraceView traceId={trace[1]} /> };
  switch (path) {
    case "/overview":
      return { perm: "read_entries", view: () => <OverviewView /> };
    case "/traces":
      return { perm: "read_entries", view: () => <SearchView /> };
    case "/access-log":
      return { perm: "read_access_log", view: () => <AccessLogView /> };
    case "/verify":
      return { perm: null, view: () => <BundleView /> };
    case "/retention":
      return { perm: "manage_retention", view: () => <RetentionView /> };
    case "/holds":
      return { perm: "manage_holds", view: () => <HoldsView /> };
    case "/erasure":
      return { perm: "erase_data", view: () => <ErasureView /> };
    case "/keys":
      return { perm: "manage_keys", view: () => <KeysView /> };
    case "/tenants":
      return { perm: "manage_tenants", view: () => <TenantsView /> };
  }
  return null;
}

export function App() {
  const path = useRoute();
  const [apiKey, setApiKey] = useState<string | null>(session.apiKey());
  const [me, setMe] = useState<WhoAmIResponse | null>(null);
  const [tenant, setTenant] = useState<string>("");
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (!apiKey) return;
    let live = true;
    makeApi(apiKey)
      .identity.whoAmI({})
      .then((w) => {
        if (!live) return;
        const saved = session.tenant();
        setMe(w);
        setTenant(saved && w.tenants.includes(saved) ? saved : w.defaultTenant);
      })
      .catch((e) => {
        if (!live) return;
        if (isUnauthenticated(e)) session.signOut();
        setApiKey(null);
        setError(e);
      });
    return () => {
      live = false;
    };
  }, [apiKey]);

  const ctx: Ctx | null = useMemo(() => {
    if (!apiKey || !me) return null;
    // A key revoked or expired while signed in ends the session at its next request.
    const lost = (e: unknown) => {
      session.signOut();
      setApiKey(null);
      setMe(null);
      setError(e);
    };
    return { api: makeApi(apiKey, tenant, lost), me, tenant, can: (p: Permission) => me.permissions.includes(p) };
  }, [apiKey, me, tenant]);

  const signIn = (key: string, w: WhoAmIResponse) => {
    session.setApiKey(key);
    setError(null);
    setMe(w);
    setTenant(w.defaultTenant);
    setApiKey(key);
    if (path === "/" || path === "/signin") navigate(firstPage(w));
  };
  const signOut = () => {
    session.signOut();
    setApiKey(null);
    setMe(null);
    setTenant("");
    setError(null);
    navigate("/");
  };

  if (!apiKey) {
    if (path === "/verify") {
      return (
        <Shell>
          <p class="crumb">
            <a href="/ui/" onClick={linkClick("/")}>
              ← Sign in
            </a>
          </p>
          <BundleView />
        </Shell>
      );
    }
    return (
      <Shell>
        <SignIn onSignIn={signIn} error={error ? errorText(error) : ""} />
      </Shell>
    );
  }
  if (!ctx) {
    return (
      <Shell>
        <Loading what="your key" />
      </Shell>
    );
  }
  const r = route(path);
  let body;
  if (path === "/") {
    body = <Home />;
  } else if (!r) {
    body = (
      <Page title="Not found">
        <Notice kind="warn">There is no page at {path}.</Notice>
      </Page>
    );
  } else if (r.perm && !ctx.can(r.perm)) {
    body = (
      <Page title="Not available">
        <Notice kind="bad" testid="forbidden">
          Your key ({roleNames[ctx.me.key?.role ?? 0]}) does not grant the {r.perm.replace(/_/g, " ")} permission this page needs. The server refuses such requests and records them in the access log.
        </Notice>
      </Page>
    );
  } else {
    body = r.view();
  }
  return (
    <AppContext.Provider value={ctx}>
      <Shell>
        <div class="layout">
          <Nav path={path} ctx={ctx} onTenant={(t) => { session.setTenant(t); setTenant(t); }} onSignOut={signOut} />
          <main key={tenant}>{body}</main>
        </div>
      </Shell>
      <ErrorBox error={error} />
    </AppContext.Provider>
  );
}

function firstPage(w: WhoAmIResponse): string {
  const item = NAV.find((n) => n.perm !== null && w.permissions.includes(n.perm));
  return item ? item.path : "/";
}

function Shell(props: { children: preact.ComponentChildren }) {
  return (
    <div class="shell">
      <header class="topbar">
        <span class="brand">Veritrace</span>
        <span class="tagline">compliance ledger console</span>
      </header>
      {props.children}
    </div>
  );
}

function Nav(props: { path: string; ctx: Ctx; onTenant: (t: string) => void; onSignOut: () => void }) {
  const { me, tenant, can } = props.ctx;
  const items = NAV.filter((n) => n.perm === null || can(n.perm));
  const groups = [...new Set(items.map((n) => n.group))];
  return (
    <nav class="nav" aria-label="Console">
      <div class="who" data-testid="who">
        <div class="role">{roleNames[me.key?.role ?? 0]}</div>
        <div class="keyid" title="API key id">
          key {me.key?.id} {me.key?.label ? `· ${me.key.label}` : ""}
        </div>
        {me.tenants.length > 1 ? (
          <label class="tenant">
            tenant{" "}
            <select value={tenant} onChange={(e) => props.onTenant(e.currentTarget.value)} data-testid="tenant-select">
              {me.tenants.map((t) => (
                <option value={t}>{t}</option>
              ))}
            </select>
          </label>
        ) : (
          <div class="tenant">tenant {tenant}</div>
        )}
      </div>
      {groups.map((g) => (
        <div class="group">
          <div class="group-name">{g}</div>
          {items
            .filter((n) => n.group === g)
            .map((n) => (
              <a href={"/ui" + n.path} class={props.path.startsWith(n.path) ? "active" : ""} onClick={linkClick(n.path)}>
                {n.label}
              </a>
            ))}
        </div>
      ))}
      <button class="link signout" onClick={props.onSignOut}>
        Sign out
      </button>
    </nav>
  );
}

function Home() {
  return (
    <Page title="Welcome">
      <Notice>
        This key may not use any of the console's audit, compliance or admin views. Ingester keys are for applications that append traces.
      </Notice>
    </Page>
  );
}
