// End-to-end tests of the web console: a real `veritrace serve` on a free
// loopback port (or VERITRACE_E2E_ADDR) with a fresh data directory, Debian's chromium driven by
// playwright-core. Run by `.ci/console e2e` (which builds the binary and
// sets VERITRACE_BIN); screenshots go to e2e/screenshots/ (git-ignored).
// @ts-check

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";

const BIN = process.env.VERITRACE_BIN ?? "";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ADDR = process.env.VERITRACE_E2E_ADDR ?? "127.0.0.1:0";
/** The server's base URL, read from its "serving" log line once it listens. */
let BASE = "";
const SHOTS = new URL("./screenshots/", import.meta.url).pathname;

/** @type {import("node:child_process").ChildProcess | undefined} */
let server;
/** @type {import("playwright-core").BrowserContext} */
let browser;
let dataDir = "";
let profileDir = "";
let serverLog = "";
/** @type {Record<string, string>} */
const tokens = {};
let logPub = "";
/** @type {string[]} */
const pageErrors = [];
/** @type {string[]} */
const foreignRequests = [];

/** A valid note verifier key with the log key's name but another Ed25519 key. */
function impostorKey(name) {
  const { publicKey } = generateKeyPairSync("ed25519");
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x ?? "", "base64url");
  const key = Buffer.concat([Buffer.from([1]), pub]);
  const hash = createHash("sha256").update(Buffer.concat([Buffer.from(name + "\n"), key])).digest().subarray(0, 4).toString("hex");
  return `${name}+${hash}+${key.toString("base64")}`;
}

/**
 * Signs receiptJson as the log would (docs/FORMAT.md §5.5), with the log's
 * own signing key from the server's data directory: what a server that
 * lies about an erasure could hand out.
 */
function signReceiptWithLogKey(receiptJson, origin) {
  const text = readFileSync(join(dataDir, "log.key"), "utf8").trim().slice("PRIVATE+KEY+".length);
  const name = text.slice(0, text.indexOf("+"));
  const hash = text.slice(name.length + 1, name.length + 9);
  const seed = Buffer.from(text.slice(name.length + 10), "base64").subarray(1);
  const key = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]), format: "der", type: "pkcs8" });
  const body = `veritrace erasure receipt v1\n${origin}\n${createHash("sha256").update(receiptJson).digest("hex")}\n`;
  const sig = sign(null, Buffer.from(body), key);
  return `${body}\n\u2014 ${name} ${Buffer.concat([Buffer.from(hash, "hex"), sig]).toString("base64")}\n`;
}

/**
 * Serves GetErasure (or Erase) answers whose receipt was changed by edit
 * and, when resign, signed again with the log key.
 */
async function tamperReceipts(page, method, edit, resign) {
  await page.route(`**/veritrace.v1.RetentionService/${method}`, async (route) => {
    const resp = await route.fetch();
    const body = await resp.json();
    const r = JSON.parse(body.erasure.receipt);
    edit(r);
    const changed = JSON.stringify(r);
    body.erasure.receipt = changed;
    if (resign) body.erasure.receiptSignature = signReceiptWithLogKey(changed, r.origin);
    await route.fulfill({ response: resp, json: body });
  });
}

/**
 * Lets the page's first PlaceHold reach the server and loses its answer (a
 * reset); passes the others. Returns the request ids sent, in order.
 */
async function loseFirstPlaceHold(page) {
  /** @type {string[]} */
  const sent = [];
  await page.route("**/veritrace.v1.RetentionService/PlaceHold", async (route) => {
    sent.push(route.request().postDataJSON().requestId);
    if (sent.length === 1) {
      await route.fetch();
      await route.abort("connectionreset");
    } else {
      await route.continue();
    }
  });
  return sent;
}

/** The verdict of each receipt check shown, by name. */
/**
 * Pages through the access log shown on page, from the page it shows, until
 * the text of the records shown satisfies want; returns that text, or ""
 * once the last page is passed. Waits for each page's records to arrive
 * (data-loaded names the start of the page whose records are shown).
 * @param {import("playwright-core").Page} page
 * @param {(text: string) => boolean} want
 */
async function findOnPages(page, want) {
  const pager = page.getByTestId("access-page");
  for (;;) {
    const text = (await page.getByTestId("access-log").textContent()) ?? "";
    if (want(text)) return text;
    const next = await pager.getAttribute("data-next");
    if (!next || next === "0") return "";
    await page.getByRole("button", { name: "Later →" }).click();
    await page.locator(`[data-testid="access-page"][data-loaded="${next}"]`).waitFor();
  }
}

async function receiptChecks(panel) {
  await panel.getByTestId("receipt-check").waitFor();
  /** @type {Record<string, string>} */
  const out = {};
  for (const li of await panel.locator("li[data-check]").all()) out[(await li.getAttribute("data-check")) ?? ""] = (await li.getAttribute("data-ok")) ?? "";
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Calls the API as a client would (Connect protocol, JSON). */
async function rpc(token, method, body, tenant) {
  const headers = { "Content-Type": "application/json", Authorization: `Bearer ${token}` };
  if (tenant) headers["Veritrace-Tenant"] = tenant;
  const r = await fetch(`${BASE}/veritrace.v1.${method}`, { method: "POST", headers, body: JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const traceId = (n) => Array(16).fill(n);
const spanId = (t, n) => [0, 0, 0, 0, 0, 0, t, n];
const hexId = (n) => Buffer.from(traceId(n)).toString("hex");

/** A decision path with every kind of content the trace view shows. */
function traces(versions) {
  const t0 = Date.now() - 60_000;
  const at = (ms) => new Date(t0 + ms).toISOString();
  const span = (t, n, parent, kind, name, start, end, extra = {}) => ({
    traceId: b64(traceId(t)), spanId: b64(spanId(t, n)), ...(parent ? { parentSpanId: b64(spanId(t, parent)) } : {}),
    name, kind, startTime: at(start), endTime: at(end), status: { code: "STATUS_CODE_OK" }, ...extra,
  });
  const who = (subject, session) => ({ subjectId: subject, sessionId: session });
  const refs = { versions: { prompt: versions.prompt, policy: versions.policy, pipeline: versions.pipeline } };
  const usage = (i, o, c) => ({ usage: { inputTokens: String(i), outputTokens: String(o), cost: c, currency: "USD" } });
  const gen = (model, q, a) => ({
    model: { provider: model.startsWith("gpt") ? "openai" : "anthropic", requestModel: model, responseModel: model, temperature: 0.2, maxTokens: "512" },
    content: {
      systemInstructions: "Answer from the refund policy only.",
      inputMessages: [{ role: "user", parts: [{ text: q }] }],
      outputMessages: a ? [{ role: "assistant", finishReason: "stop", parts: [{ text: a }] }] : [],
    },
  });
  const out = [];
  // Trace 1: customer-42 asks for a refund: retrieval, a failed call, a fallback, a tool, a guardrail.
  out.push(
    span(1, 1, 0, "SPAN_KIND_AGENT", "invoke_agent support", 0, 4200, { ...who("customer-42", "session-a"), attributes: { "deployment.environment": "prod" } }),
    span(1, 2, 1, "SPAN_KIND_RETRIEVAL", "retrieval kb", 50, 300, {
      ...who("customer-42", "session-a"), ...refs,
      content: { retrieval: { dataSource: "kb", query: "refund policy", documents: [{ id: "refunds.md#2", sourceUri: "s3://kb/refunds.md", version: "7", contentDigest: "sha256:" + "0f".repeat(32), score: 0.87, text: "Refunds within 30 days of delivery." }] } },
      attributes: { "deployment.environment": "prod" },
    }),
    span(1, 3, 1, "SPAN_KIND_GENERATION", "chat gpt-4o", 320, 1500, {
      ...who("customer-42", "session-a"), ...refs, ...gen("gpt-4o", "Can I get a refund for order A-1?", ""), ...usage(812, 0, 0.002),
      status: { code: "STATUS_CODE_ERROR", message: "upstream timeout after 1s" }, attributes: { "deployment.environment": "prod" },
    }),
    span(1, 4, 1, "SPAN_KIND_GENERATION", "chat claude-sonnet", 1520, 2900, {
      ...who("customer-42", "session-a"), ...refs, ...gen("claude-sonnet", "Can I get a refund for order A-1?", "Yes: order A-1 shipped 12 days ago, within the 30-day window."), ...usage(830, 64, 0.0041),
      attributes: { "deployment.environment": "prod" },
    }),
    span(1, 5, 1, "SPAN_KIND_TOOL", "execute_tool lookup_order", 2950, 3300, {
      ...who("customer-42", "session-a"),
      content: { toolCall: { name: "lookup_order", callId: "call-1", type: "function", arguments: '{"order":"A-1"}', result: '{"status":"shipped","days":12}' } },
    }),
    span(1, 6, 1, "SPAN_KIND_GUARDRAIL", "guardrail pii", 3350, 3500, {
      ...who("customer-42", "session-a"), content: { guardrail: { name: "pii-mask", outcome: "GUARDRAIL_OUTCOME_MODIFIED", detail: "email address masked" } },
    }),
  );
  // Trace 2: customer-42 again, a plain answer.
  out.push(span(2, 1, 0, "SPAN_KIND_GENERATION", "chat gpt-4o", 5000, 6100, { ...who("customer-42", "session-b"), ...refs, ...gen("gpt-4o", "Where is my parcel?", "It arrives tomorrow."), ...usage(400, 20, 0.0012), attributes: { "deployment.environment": "staging" } }));
  // Trace 3: customer-7, to be held and then erased.
  out.push(
    span(3, 1, 0, "SPAN_KIND_AGENT", "invoke_agent support", 7000, 8000, who("customer-7", "session-c")),
    span(3, 2, 1, "SPAN_KIND_GENERATION", "chat gpt-4o", 7100, 7900, { ...who("customer-7", "session-c"), ...refs, ...gen("gpt-4o", "Delete my data, please.", "We will."), ...usage(300, 10, 0.0009) }),
  );
  return out;
}

before(async () => {
  assert.ok(BIN, "set VERITRACE_BIN to a built veritrace binary (.ci/console e2e does)");
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "veritrace-e2e-data-"));
  profileDir = mkdtempSync(join(tmpdir(), "veritrace-e2e-chromium-"));
  server = spawn(BIN, ["serve", "--data", dataDir, "--listen", ADDR, "--log-level", "info", "--sweep-interval", "0"], { stdio: ["ignore", "ignore", "pipe"] });
  server.stderr?.on("data", (d) => (serverLog += d));
  for (let i = 0; ; i++) {
    const m = /msg=serving addr=(http:\/\/[0-9.:]+)/.exec(serverLog);
    if (m) BASE = m[1];
    try {
      if (BASE && (await fetch(`${BASE}/ui/`)).ok) break;
    } catch {}
    if (i > 300 || server.exitCode !== null) throw new Error(`the server did not start:\n${serverLog}`);
    await sleep(100);
  }
  const admin = readFileSync(join(dataDir, "admin.key"), "utf8").trim();
  logPub = readFileSync(join(dataDir, "log.pub"), "utf8").trim();
  tokens.admin = admin;
  for (const [name, role] of [["auditor", "ROLE_AUDITOR"], ["compliance", "ROLE_COMPLIANCE_OFFICER"], ["ingester", "ROLE_INGESTER"]]) {
    tokens[name] = (await rpc(admin, "AdminService/CreateKey", { role, tenants: ["default"], label: `e2e ${name}` })).token;
  }
  const versions = {};
  for (const [kind, name, label, content] of [
    ["VERSION_KIND_PROMPT", "support-answer", "v3", "You are a support agent. Cite the refund policy."],
    ["VERSION_KIND_POLICY", "refunds", "2026-11", "Refunds are granted within 30 days of delivery."],
    ["VERSION_KIND_PIPELINE", "rag", "7", '{"retriever":"kb","k":4,"fallback":"claude-sonnet"}'],
  ]) {
    const r = await rpc(tokens.ingester, "IngestService/RegisterVersion", { kind, name, label, content: b64(Buffer.from(content)), mediaType: kind.endsWith("PIPELINE") ? "application/json" : "text/plain" });
    versions[kind.replace("VERSION_KIND_", "").toLowerCase()] = r.id;
  }
  await rpc(tokens.ingester, "IngestService/AppendSpans", { spans: traces(versions), waitCheckpoint: true });
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1360, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  browser.on("page", watch);
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (server && server.exitCode === null) await new Promise((r) => server?.once("exit", r));
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(profileDir, { recursive: true, force: true });
});

/** Records script errors, CSP violations and any request that leaves the server's origin. */
function watch(page) {
  page.on("pageerror", (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  page.on("console", (m) => {
    // Refused RPCs show up as failed resource loads: those are expected (409: a stale retention change, aborted).
    if (m.type() === "error" && !/Failed to load resource: the server responded with a status of (403|404|400|401|409)/.test(m.text())) pageErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(BASE + "/") && !u.startsWith("blob:") && !u.startsWith("data:")) foreignRequests.push(u);
  });
}

async function signIn(role) {
  const page = await browser.newPage();
  const resp = await page.goto(`${BASE}/ui/`);
  assert.equal(resp?.status(), 200);
  await page.getByTestId("api-key").fill(tokens[role]);
  await page.getByTestId("sign-in").click();
  await page.getByTestId("who").waitFor();
  return page;
}

async function navLinks(page) {
  return (await page.locator("nav.nav a").allTextContents()).map((s) => s.trim());
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, name + ".png"), fullPage: true });

describe("the web console", () => {
  test("is served by the binary with strict security headers and nothing from elsewhere", async () => {
    for (const path of ["/ui/", "/ui/traces/" + hexId(1), "/ui/favicon.svg"]) {
      const r = await fetch(BASE + path);
      assert.equal(r.status, 200, path);
      const csp = r.headers.get("content-security-policy") ?? "";
      for (const d of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"]) {
        assert.ok(csp.includes(d), `${path}: CSP lacks ${d}: ${csp}`);
      }
      assert.ok(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), csp);
      assert.equal(r.headers.get("x-content-type-options"), "nosniff");
      assert.equal(r.headers.get("x-frame-options"), "DENY");
      assert.equal(r.headers.get("referrer-policy"), "no-referrer");
      assert.equal(r.headers.get("set-cookie"), null);
    }
    const index = await (await fetch(BASE + "/ui/")).text();
    assert.ok(!/<script>(?!<\/script>)|<script [^>]*>[^<]/.test(index), "inline script in index.html");
    assert.ok(!/https?:\/\//.test(index), "index.html names another origin");
    const root = await fetch(BASE + "/", { redirect: "manual" });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get("location"), "/ui/");
    assert.equal((await fetch(BASE + "/ui/assets/missing.js")).status, 404);
    assert.equal((await fetch(BASE + "/ui/", { method: "POST" })).status, 405);
  });

  test("signs in as each role and shows only what the role may do", async () => {
    const expect = {
      auditor: { role: "auditor", has: ["Overview", "Traces", "Access log", "Verify a bundle"], lacks: ["Retention", "Legal holds", "Erasure", "API keys", "Tenants"] },
      compliance: { role: "compliance officer", has: ["Overview", "Traces", "Access log", "Retention", "Legal holds", "Erasure"], lacks: ["API keys", "Tenants"] },
      admin: { role: "admin", has: ["Access log", "API keys", "Tenants", "Verify a bundle"], lacks: ["Overview", "Traces", "Erasure", "Legal holds", "Retention"] },
      ingester: { role: "ingester", has: ["Verify a bundle"], lacks: ["Overview", "Traces", "Access log", "Erasure", "API keys"] },
    };
    for (const [name, want] of Object.entries(expect)) {
      const page = await signIn(name);
      assert.equal((await page.locator(".who .role").textContent())?.trim(), want.role);
      const links = await navLinks(page);
      for (const l of want.has) assert.ok(links.includes(l), `${name} lacks ${l}: ${links}`);
      for (const l of want.lacks) assert.ok(!links.includes(l), `${name} sees ${l}`);
      // The key is in this tab's session storage only: not in the URL, a cookie or local storage.
      assert.ok(!page.url().includes(tokens[name]));
      assert.equal(await page.evaluate(() => sessionStorage.getItem("veritrace.apiKey")), tokens[name]);
      assert.ok(!(await page.evaluate(() => JSON.stringify(localStorage))).includes("vtk_"));
      assert.equal((await browser.cookies(BASE)).length, 0);
      await shot(page, `signed-in-${name}`);
      // A new tab starts signed out.
      const other = await browser.newPage();
      await other.goto(`${BASE}/ui/`);
      await other.getByTestId("api-key").waitFor();
      await other.close();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByTestId("api-key").waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem("veritrace.apiKey")), null);
      await page.close();
    }
    const page = await browser.newPage();
    await page.goto(`${BASE}/ui/`);
    await page.getByTestId("api-key").fill("vtk_0000000000000000_" + "A".repeat(43));
    await page.getByTestId("sign-in").click();
    await page.getByText("unauthenticated: invalid API key").waitFor();
    await page.close();
  });

  test("an auditor searches, opens a trace and sees its decision path", async () => {
    const page = await signIn("auditor");
    await page.getByRole("link", { name: "Traces" }).click();
    await page.locator('input[name="subject"]').fill("customer-42");
    await page.getByTestId("search").click();
    await page.getByTestId("trace-row").first().waitFor();
    assert.equal(await page.getByTestId("trace-row").count(), 2);
    const first = page.getByTestId("trace-row").first();
    assert.ok((await first.textContent())?.includes("invoke_agent support"));
    assert.ok((await first.textContent())?.includes("1 error"));
    await shot(page, "search");
    // Other conditions: errors only, a model, a span kind.
    await page.locator('input[name="errors"]').check();
    await page.getByTestId("search").click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="trace-row"]').length === 1);
    await page.locator('input[name="errors"]').uncheck();
    await page.locator('input[name="model"]').fill("claude-sonnet");
    await page.getByTestId("search").click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="trace-row"]').length === 1);
    await page.locator('input[name="model"]').fill("");
    await page.getByTestId("search").click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="trace-row"]').length === 2);
    await page.getByTestId("trace-row").first().click();
    await page.getByTestId("waterfall").waitFor();
    assert.equal(await page.getByTestId("trace-id").textContent(), hexId(1));
    assert.equal(await page.getByTestId("span-row").count(), 6);
    const wf = await page.getByTestId("waterfall").textContent();
    assert.ok(wf?.includes("failed attempt") && wf.includes("fallback"), `retries and fallbacks are marked: ${wf}`);
    await page.getByTestId("span-row").filter({ hasText: "chat claude-sonnet" }).click();
    const detail = page.getByTestId("span-detail");
    for (const s of ["claude-sonnet", "Temperature", "0.2", "830", "0.0041 USD", "within the 30-day window", "Answer from the refund policy only.", "support-answer v3", "refunds 2026-11"]) {
      assert.ok((await detail.textContent())?.includes(s), `span detail lacks ${s}`);
    }
    await page.getByTestId("span-row").filter({ hasText: "retrieval kb" }).click();
    assert.ok((await page.getByTestId("retrieval").textContent())?.includes("s3://kb/refunds.md"));
    await page.getByTestId("span-row").filter({ hasText: "execute_tool" }).click();
    assert.ok((await page.getByTestId("tool-call").textContent())?.includes('{"status":"shipped","days":12}'));
    await page.getByTestId("span-row").filter({ hasText: "guardrail pii" }).click();
    assert.ok((await page.getByTestId("guardrail").textContent())?.includes("modified"));
    await page.getByTestId("tree-tab").click();
    assert.equal(await page.getByTestId("tree").locator("li").count(), 6);
    const versions = await page.getByTestId("versions").textContent();
    assert.ok(versions?.includes("support-answer") && versions.includes("refunds") && versions.includes("rag"));
    await page.getByTestId("versions").locator("summary").first().click();
    assert.ok((await page.getByTestId("versions").textContent())?.includes("Cite the refund policy"));
    await page.getByRole("tab", { name: "Waterfall" }).click();
    await page.getByTestId("span-row").filter({ hasText: "chat claude-sonnet" }).click();
    await shot(page, "trace");
    await page.screenshot({ path: join(SHOTS, "readme.png") }); // the viewport: docs/console.png
    await page.close();
  });

  test("an auditor verifies a trace in the browser, and a tampered proof or a wrong key fails", async () => {
    const page = await signIn("auditor");
    await page.goto(`${BASE}/ui/traces/${hexId(1)}`);
    await page.getByTestId("waterfall").waitFor();
    await page.getByTestId("log-key").fill(logPub);
    await page.getByTestId("verify").click();
    await page.getByTestId("verify-result").waitFor();
    assert.ok(await page.getByTestId("verified").isVisible(), await page.getByTestId("verify-result").textContent());
    const checks = page.getByTestId("checks").locator("li[data-check]");
    assert.ok((await checks.count()) >= 8);
    assert.equal(await page.locator('li[data-check][data-ok="false"]').count(), 0);
    assert.ok((await page.locator('li[data-check="inclusion proofs"]').textContent())?.includes("9 ok"), "6 spans and 3 versions proved");
    await shot(page, "verified");
    await page.getByTestId("pin-checkpoint").click();

    // A server that lies about one proof hash is caught.
    await page.route("**/veritrace.v1.LedgerService/GetInclusionProof", async (route) => {
      const resp = await route.fetch();
      const body = await resp.json();
      const h = Buffer.from(body.proof.hashes[0], "base64");
      h[0] ^= 1;
      body.proof.hashes[0] = h.toString("base64");
      await route.fulfill({ response: resp, json: body });
    });
    await page.getByTestId("verify").click();
    await page.getByTestId("not-verified").waitFor();
    assert.equal(await page.locator('li[data-check="inclusion proofs"]').getAttribute("data-ok"), "false");
    assert.equal(await page.locator('li[data-check="checkpoint signature"]').getAttribute("data-ok"), "true");
    await shot(page, "tampered-proof");
    await page.unroute("**/veritrace.v1.LedgerService/GetInclusionProof");

    // So is a span whose content differs from what was recorded.
    await page.route("**/veritrace.v1.AuditService/GetTrace", async (route) => {
      const resp = await route.fetch();
      const body = await resp.json();
      body.roots[0].span.name = "something else";
      await route.fulfill({ response: resp, json: body });
    });
    await page.reload();
    await page.getByTestId("waterfall").waitFor();
    await page.getByTestId("log-key").fill(logPub);
    await page.getByTestId("verify").click();
    await page.getByTestId("not-verified").waitFor();
    assert.equal(await page.locator('li[data-check="content shown = content recorded"]').getAttribute("data-ok"), "false");
    await page.unroute("**/veritrace.v1.AuditService/GetTrace");

    // A checkpoint signed by another key does not verify.
    await page.reload();
    await page.getByTestId("waterfall").waitFor();
    await page.getByTestId("log-key").fill(impostorKey(logPub.split("+")[0]));
    await page.getByTestId("verify").click();
    await page.getByTestId("not-verified").waitFor();
    assert.equal(await page.locator('li[data-check="checkpoint signature"]').getAttribute("data-ok"), "false");
    await page.getByTestId("log-key").fill(logPub);
    await page.getByTestId("verify").click();
    await page.getByTestId("verified").waitFor();
    // With the checkpoint pinned, the log is also checked to have only grown.
    assert.equal(await page.locator('li[data-check="consistency with the pinned checkpoint"]').getAttribute("data-ok"), "true");
    await page.close();
  });

  test("an auditor exports a bundle and verifies it offline in the browser; a damaged one fails", async () => {
    const page = await signIn("auditor");
    await page.goto(`${BASE}/ui/traces/${hexId(1)}`);
    await page.getByTestId("waterfall").waitFor();
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-trace").click()]);
    const file = join(dataDir, "..", `e2e-bundle-${process.pid}.zip`);
    await download.saveAs(file);
    await page.getByTestId("exported").waitFor();
    // The Go verifier agrees.
    const keyFile = join(dataDir, "log.pub");
    const go = spawnSync(BIN, ["verify", file, "--key", keyFile], { encoding: "utf8" });
    assert.equal(go.status, 0, go.stdout + go.stderr);
    // In the browser, from the file, with no server involved.
    const offline = await browser.newPage();
    await offline.goto(`${BASE}/ui/verify`);
    await offline.getByTestId("bundle-file").setInputFiles(file);
    await offline.getByTestId("bundle-name").waitFor();
    await offline.getByTestId("bundle-key").fill(logPub);
    let requests = 0;
    offline.on("request", () => requests++);
    await offline.getByTestId("verify-bundle").click();
    await offline.getByTestId("bundle-verified").waitFor();
    assert.equal(requests, 0, "verifying a bundle sends nothing");
    assert.equal(await offline.locator('li[data-check][data-ok="false"]').count(), 0);
    // The 16 checks of docs/BUNDLE.md, and the consistency proof the export carries.
    assert.equal(await offline.locator("li[data-check]").count(), 17);
    await shot(offline, "bundle-verified");
    // One changed byte in an entry's compressed data: the bundle no longer verifies.
    const bytes = readFileSync(file);
    const at = bytes.indexOf(Buffer.from("entries/")) + 60;
    bytes[at] ^= 0x20;
    const bad = file.replace(".zip", "-damaged.zip");
    writeFileSync(bad, bytes);
    await offline.getByTestId("bundle-file").setInputFiles(bad);
    await offline.getByTestId("verify-bundle").click();
    await offline.getByTestId("bundle-not-verified").waitFor();
    await shot(offline, "bundle-damaged");
    rmSync(file);
    rmSync(bad);

    // A subject's bundle verifies with a note of what it cannot show (it is
    // not a time range), on the page as veritrace verify prints it.
    await page.getByRole("link", { name: "Traces" }).click();
    await page.locator('input[name="subject"]').fill("customer-42");
    await page.getByTestId("search").click();
    await page.getByTestId("trace-row").first().waitFor();
    const [subjectDownload] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export").click()]);
    const subjectFile = join(dataDir, "..", `e2e-subject-bundle-${process.pid}.zip`);
    await subjectDownload.saveAs(subjectFile);
    const goSubject = spawnSync(BIN, ["verify", subjectFile, "--key", keyFile], { encoding: "utf8" });
    assert.equal(goSubject.status, 0, goSubject.stdout + goSubject.stderr);
    const goNotes = [...goSubject.stdout.matchAll(/^ +note: (.*)$/gm)].map((x) => x[1]);
    assert.ok(goNotes.includes("the selector is not a time range: the bundle does not show that no other trace matches it"), goSubject.stdout);
    await offline.getByTestId("bundle-file").setInputFiles(subjectFile);
    await offline.getByTestId("verify-bundle").click();
    await offline.getByTestId("bundle-verified").waitFor();
    const pageNotes = (await offline.getByTestId("check-note").allTextContents()).map((t) => t.replace(/^note: /, ""));
    assert.deepEqual(pageNotes, goNotes, "the console's notes are veritrace verify's");
    assert.ok(await offline.locator('li[data-check="time range"] [data-testid="check-note"]').isVisible(), "the note is shown, not hidden");
    const goFirst = goSubject.stdout.split("\n")[0];
    assert.equal((await offline.getByTestId("bundle-summary").textContent())?.replace(/\.$/, ""), goFirst.replace(/^b/, "B"));
    await shot(offline, "bundle-subject-notes");
    rmSync(subjectFile);

    // A manifest edited and not signed anew: nothing it claims is shown.
    const bundles = new URL("../testdata/bundles/", import.meta.url);
    await offline.getByTestId("bundle-file").setInputFiles(new URL("manifest-changed.zip", bundles).pathname);
    await offline.getByTestId("bundle-key").fill(readFileSync(new URL("log.pub", bundles), "utf8").trim());
    await offline.getByTestId("verify-bundle").click();
    await offline.getByTestId("bundle-not-verified").waitFor();
    const summary = await offline.getByTestId("bundle-summary").textContent();
    assert.ok(summary?.startsWith("Bundle of unknown content: its manifest could not be trusted (bundle signature: the signature is for another manifest"), summary);
    const report = await offline.getByTestId("bundle-report").textContent();
    assert.ok(!/entries|tree size|unknown log|What the manifest says/.test(report ?? ""), report);
    await offline.close();
    // The export is in the access log.
    const log = await rpc(tokens.auditor, "LedgerService/ListAccessLog", { pageSize: 1000 });
    assert.ok(log.entries.some((e) => e.record.procedure.endsWith("/ExportBundle") && e.record.target.includes(hexId(1))), "export recorded");
    await page.close();
  });

  test("a compliance officer places a hold, runs a dry run, releases the hold and erases", async () => {
    const page = await signIn("compliance");
    await page.getByRole("link", { name: "Legal holds" }).click();
    await page.locator('input[name="scope-value"]').fill("customer-7");
    await page.locator('input[name="case"]').fill("CASE-7");
    await page.locator('input[name="reason"]').fill("pending litigation");
    await page.getByTestId("place-hold").click();
    await page.getByTestId("hold-placed").waitFor();
    await page.getByTestId("hold-row").first().waitFor();
    assert.ok((await page.getByTestId("holds").textContent())?.includes("subject customer-7"));
    // The hold shows the subject while it exists, with the pseudonym its ledger entry names it by.
    const pseudonym = ((await page.getByTestId("hold-row").first().getByTestId("pseudonym").textContent()) ?? "").replace(/^pseudonym:/, "");
    assert.match(pseudonym, /^[0-9a-f]{24}$/);
    assert.ok((await page.getByTestId("hold-placed").textContent())?.includes(`pseudonym:${pseudonym}`));
    await page.getByTestId("holds-pseudonym-help").waitFor();
    await shot(page, "holds");

    // The access log filtered by that subject shows only the records that name its pseudonym.
    const named = (t) => [...t.matchAll(/(?:subject|session)=pseudonym:([0-9a-f]{24}|none|unavailable)/g)].map((m) => m[1]);
    const everything = (await rpc(tokens.compliance, "LedgerService/ListAccessLog", { pageSize: 1000 })).entries;
    assert.ok(
      everything.some((e) => named(e.record?.target ?? "").some((p) => p !== pseudonym)),
      "the log names other subjects too (the auditor's searches for customer-42), or the filter below shows nothing",
    );
    await page.getByRole("link", { name: "Access log" }).click();
    await page.getByTestId("access-row").first().waitFor();
    await page.getByTestId("pseudonym-help").waitFor();
    await page.locator('input[name="concerning-id"]').fill("customer-7");
    await page.getByTestId("filter-concerning").click();
    await page.getByTestId("concerning").waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="access-row"]')].some((r) => r.textContent?.includes("for case CASE-7")));
    const rows = await page.getByTestId("access-row").allTextContents();
    for (const r of rows) assert.deepEqual([...new Set(named(r))], [pseudonym], `a record that does not concern customer-7: ${r}`);
    assert.ok(!page.url().includes("customer-7"), `the filter is in the address: ${page.url()}`);
    const stored = await page.evaluate(() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)]));
    assert.ok(!stored.includes("customer-7"), "the filter is in the browser's storage");
    await shot(page, "access-log-subject");
    await page.getByTestId("clear-concerning").click();
    await page.getByTestId("concerning").waitFor({ state: "detached" });
    await page.getByTestId("access-row").first().waitFor();
    // A hold's "access records" opens the same filter.
    await page.getByRole("link", { name: "Legal holds" }).click();
    await page.getByTestId("hold-access-log").click();
    await page.getByTestId("concerning").waitFor();
    assert.equal(await page.locator('input[name="concerning-id"]').inputValue(), "customer-7");
    assert.ok(!page.url().includes("customer-7"), `the filter is in the address: ${page.url()}`);

    await page.getByRole("link", { name: "Erasure" }).click();
    await page.locator('input[name="erase-value"]').fill("customer-7");
    await page.locator('input[name="erase-reason"]').fill("subject request");
    await page.locator('input[name="ticket"]').fill("DSR-118");
    await page.getByTestId("dry-run").click();
    await page.getByTestId("dry-run-result").waitFor();
    const held = await page.getByTestId("dry-run-result").textContent();
    assert.ok(held?.includes("Would erase 0 entries") && held.includes("2 held"), held ?? "");
    assert.equal(await page.getByTestId("execute-erasure").count(), 0, "nothing to erase while held");

    await page.getByRole("link", { name: "Legal holds" }).click();
    await page.getByTestId("release").click();
    await page.locator('input[name="release-reason"]').fill("case closed");
    await page.getByTestId("confirm-release").click();
    await page.getByText("No active holds.").waitFor();

    await page.getByRole("link", { name: "Erasure" }).click();
    await page.locator('input[name="erase-value"]').fill("customer-7");
    await page.locator('input[name="erase-reason"]').fill("subject request");
    await page.getByTestId("dry-run").click();
    await page.getByText("Would erase 2 entries").waitFor();
    await shot(page, "erasure-dry-run");
    assert.ok(await page.getByTestId("execute-erasure").isDisabled(), "erasing needs the confirmation");
    await page.getByTestId("confirm-erasure").check();
    await page.getByTestId("execute-erasure").click();
    await page.getByTestId("erasure-done").waitFor();
    const receipt = JSON.parse((await page.getByTestId("receipt").textContent()) ?? "{}");
    // Receipt format 2 counts the erased entries and names the tombstone parts that list them.
    assert.equal(receipt.format, "veritrace-erasure-receipt/v2");
    assert.equal(receipt.erased_count, 2);
    assert.equal(receipt.tombstones.length, 1);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("download-receipt").click()]);
    const saved = JSON.parse(readFileSync((await download.path()) ?? "", "utf8"));
    assert.ok(saved.signature.includes("\u2014 "), "the receipt carries its signed note");
    assert.equal(saved.receipt.erased_count, 2);
    // The receipt checks in the browser, parts and counts too, with the pinned log key.
    await page.evaluate((k) => localStorage.setItem("veritrace.pinnedLogKey", k), logPub);
    const done = page.getByTestId("erasure-done");
    await done.getByTestId("check-receipt").click();
    assert.deepEqual(await receiptChecks(done), { "receipt signature": "true", "receipt checkpoint": "true", "tombstone parts": "true", counts: "true" });
    await done.getByTestId("receipt-verified").waitFor();
    await shot(page, "erasure-receipt-verified");
    await page.getByTestId("erasure-row").first().waitFor();
    assert.ok((await page.getByTestId("erasure-history").textContent())?.includes("done"));
    await shot(page, "erasure-done");

    // The released hold now names only an erased subject, by the same pseudonym.
    await page.getByRole("link", { name: "Legal holds" }).click();
    await page.getByText("No active holds.").waitFor();
    await page.getByLabel("include released holds").check();
    await page.getByTestId("hold-erased").waitFor();
    const erased = (await page.getByTestId("hold-row").first().textContent()) ?? "";
    assert.ok(erased.includes("erased subject") && !erased.includes("or session") && erased.includes(`pseudonym:${pseudonym}`) && erased.includes("released"), erased);
    assert.ok(!(await page.getByTestId("holds").textContent())?.includes("customer-7"), "the erased subject's id is still shown");
    assert.equal(await page.getByTestId("hold-access-log").count(), 0, "an erased subject's records cannot be looked up");
    await shot(page, "holds-erased");
    // Nothing links the access records to customer-7 any more.
    await page.getByRole("link", { name: "Access log" }).click();
    await page.locator('input[name="concerning-id"]').fill("customer-7");
    await page.getByTestId("filter-concerning").click();
    await page.getByTestId("no-access-rows").waitFor();
    assert.equal(await page.getByTestId("access-row").count(), 0);
    await page.close();

    // The auditor now sees the trace's spans as erased, and the trace still verifies.
    const aud = await signIn("auditor");
    await aud.goto(`${BASE}/ui/traces/${hexId(3)}`);
    await aud.getByTestId("waterfall").waitFor();
    assert.equal(await aud.getByTestId("span-erased").count(), 1);
    await aud.getByTestId("log-key").fill(logPub);
    await aud.getByTestId("verify").click();
    await aud.getByTestId("verified").waitFor();
    await aud.close();
  });

  test("a hold submitted again after its answer was lost is placed once", async () => {
    const page = await signIn("compliance");
    await page.getByRole("link", { name: "Legal holds" }).click();
    // The server places the first hold; its answer is lost on the way (a reset).
    const sent = await loseFirstPlaceHold(page);
    await page.locator('select[name="scope"]').selectOption("trace");
    await page.locator('input[name="scope-value"]').fill(hexId(9));
    await page.locator('input[name="case"]').fill("CASE-LOST");
    await page.locator('input[name="reason"]').fill("answer lost");
    await page.getByTestId("place-hold").click();
    await page.getByTestId("hold-request-id").waitFor();
    assert.equal(await page.getByTestId("hold-placed").count(), 0);
    await page.getByTestId("place-hold").click();
    await page.getByTestId("hold-placed").waitFor();
    assert.equal(sent.length, 2);
    assert.match(sent[0], /^hold-\d{4}-\d{2}-\d{2}-[0-9a-f]{16}$/);
    assert.equal(sent[1], sent[0], "the submission asked again sent another request id");
    const lost = (await rpc(tokens.compliance, "RetentionService/ListHolds", { all: true })).holds.filter((h) => h.caseRef === "CASE-LOST");
    assert.equal(lost.length, 1, `holds placed by one submission asked twice: ${JSON.stringify(lost)}`);
    assert.equal(lost[0].requestId, sent[0]);
    assert.ok((await page.getByTestId("hold-placed").textContent())?.includes(lost[0].id));
    // The list shows each hold's request id (the one a retry is sent with).
    await page.waitForFunction((id) => [...document.querySelectorAll('[data-testid="hold-request"]')].some((e) => e.textContent?.includes(id)), sent[0]);
    // The next submission is a new request.
    await page.locator('input[name="scope-value"]').fill(hexId(9));
    await page.locator('input[name="case"]').fill("CASE-LOST-2");
    await page.locator('input[name="reason"]').fill("another hold");
    await page.getByTestId("place-hold").click();
    await page.waitForFunction(() => document.querySelector('[data-testid="hold-placed"]')?.textContent?.includes("CASE-LOST-2"));
    assert.equal(sent.length, 3);
    assert.notEqual(sent[2], sent[0], "a new submission reused the placed hold's request id");
    for (const h of (await rpc(tokens.compliance, "RetentionService/ListHolds", {})).holds.filter((h) => h.caseRef.startsWith("CASE-LOST"))) {
      await rpc(tokens.compliance, "RetentionService/ReleaseHold", { holdId: h.id, reason: "test done" });
    }
    await page.close();
    // The browser logged the reset this test made, and nothing else.
    const reset = pageErrors.filter((e) => e.endsWith("Failed to load resource: net::ERR_CONNECTION_RESET"));
    assert.equal(reset.length, 1, `the browser's errors: ${pageErrors}`);
    pageErrors.splice(pageErrors.indexOf(reset[0]), 1);
  });

  test("a role without a right neither sees nor reaches it", async () => {
    const page = await signIn("auditor");
    for (const path of ["erasure", "holds", "retention", "keys", "tenants"]) {
      await page.goto(`${BASE}/ui/${path}`);
      await page.getByTestId("forbidden").waitFor();
    }
    // More than a page of records before the refusal (each read of an entry is recorded), so that it is found on a later page.
    for (let i = 0; i < 120; i++) await rpc(tokens.auditor, "LedgerService/GetEntry", { index: "0" });
    // Calling the RPC from the page with the auditor's key is refused by the server, and recorded.
    const status = await page.evaluate(async () => {
      const r = await fetch("/veritrace.v1.RetentionService/Erase", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + sessionStorage.getItem("veritrace.apiKey") },
        body: JSON.stringify({ requestId: "x", subjectId: "customer-42", legalBasis: "x", reason: "x" }),
      });
      return [r.status, (await r.json()).code];
    });
    assert.deepEqual(status, [403, "permission_denied"]);
    await page.goto(`${BASE}/ui/access-log`);
    await page.getByTestId("access-row").first().waitFor();
    await page.getByTestId("outcome-filter").selectOption({ label: "denied" });
    // The log lists 100 records a page, oldest first: page on until the
    // refusal shows, however many records the tests before wrote.
    const denied = await findOnPages(page, (t) => t.includes("RetentionService/Erase") && t.includes("permission_denied"));
    assert.ok(denied, "the refused Erase is on no page of the access log");
    await page.getByTestId("outcome-filter").selectOption({ label: "all" });
    await shot(page, "access-log");
    await page.close();

    const admin = await signIn("admin");
    await admin.goto(`${BASE}/ui/traces`);
    await admin.getByTestId("forbidden").waitFor();
    await admin.goto(`${BASE}/ui/traces/${hexId(1)}`);
    await admin.getByTestId("forbidden").waitFor();
    await admin.getByRole("link", { name: "API keys" }).click();
    await admin.getByTestId("key-row").first().waitFor();
    assert.ok((await admin.getByTestId("keys").textContent())?.includes("e2e auditor"));
    // The access log, but not its filter by subject: that needs read_entries (the server refuses it to admins).
    await admin.getByRole("link", { name: "Access log" }).click();
    await admin.getByTestId("access-log").waitFor();
    assert.equal(await admin.getByTestId("concerning-form").count(), 0, "an admin is offered the subject filter");
    await admin.close();

    const ing = await signIn("ingester");
    await ing.goto(`${BASE}/ui/access-log`);
    await ing.getByTestId("forbidden").waitFor();
    await ing.close();
  });

  test("the overview charts volume, errors, tokens and cost", async () => {
    const page = await signIn("auditor");
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByTestId("totals").waitFor();
    const totals = await page.getByTestId("totals").textContent();
    assert.ok(totals?.includes("Traces3") && totals.includes("Spans9"), totals ?? "");
    assert.ok((await page.getByTestId("chart-volume").locator("rect").count()) > 0);
    assert.ok((await page.getByTestId("by-model").textContent())?.includes("claude-sonnet"));
    await page.getByTestId("group-attr").fill("deployment.environment");
    await page.getByRole("button", { name: "Update" }).click();
    // The breakdown is re-rendered when the answer arrives: wait for the new content, not the old element.
    await page.getByTestId("by-attribute").getByText("staging").first().waitFor();
    assert.ok((await page.getByTestId("by-attribute").textContent())?.includes("staging"));
    await shot(page, "overview");
    await page.close();
  });

  test("no script error, no CSP violation, no request to another origin", () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(foreignRequests, []);
  });
});

// The second round: an outside reviewer's attacks (hostile content, a
// lying server, stale data across tenants and sign-outs, a revoked key)
// and the rest of the issue (admin and retention pages, pagination, a
// trace of more than 500 spans, past erasures). Its data lives in a second
// tenant, "acme", so the tests above see only their own.
describe("attacks on the console, and what users expect of it", () => {
  const ACME = "acme";
  const EVIL = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>`;
  const EVIL_URL = "javascript:window.__pwned=1";
  const BIG = 600; // spans in one trace: more than the 500 a summary reads
  const bigTrace = Array(16).fill(0x50);
  const evilTrace = Array(16).fill(0x66);
  const bulkTrace = (n) => [0x70, ...Array(13).fill(0), n >> 8, n & 255];
  const hex = (b) => Buffer.from(b).toString("hex");

  before(async () => {
    await rpc(tokens.admin, "AdminService/CreateTenant", { name: ACME });
    tokens.multi = (await rpc(tokens.admin, "AdminService/CreateKey", { role: "ROLE_AUDITOR", tenants: ["default", ACME], label: "e2e two tenants" })).token;
    tokens.acmeCompliance = (await rpc(tokens.admin, "AdminService/CreateKey", { role: "ROLE_COMPLIANCE_OFFICER", tenants: [ACME], label: "e2e acme compliance" })).token;
    const ingest = (await rpc(tokens.admin, "AdminService/CreateKey", { role: "ROLE_INGESTER", tenants: [ACME], label: "e2e acme ingester" })).token;
    const t0 = Date.now() - 120_000;
    const at = (ms) => new Date(t0 + ms).toISOString();
    const version = await rpc(ingest, "IngestService/RegisterVersion", { kind: "VERSION_KIND_PROMPT", name: EVIL, label: EVIL, content: b64(Buffer.from(EVIL)), mediaType: "text/html" }, ACME);
    // A trace whose every string is hostile.
    const evil = {
      traceId: b64(evilTrace), spanId: b64([6, 6, 6, 6, 6, 6, 6, 1]), name: EVIL, kind: "SPAN_KIND_GENERATION", startTime: at(0), endTime: at(100),
      subjectId: EVIL, sessionId: EVIL, status: { code: "STATUS_CODE_ERROR", message: EVIL }, attributes: { [EVIL]: EVIL, "url.full": EVIL_URL },
      versions: { prompt: version.id },
      model: { provider: EVIL, requestModel: EVIL, stopSequences: [EVIL] },
      content: {
        systemInstructions: EVIL,
        inputMessages: [{ role: EVIL, parts: [{ text: EVIL }, { uri: EVIL_URL }, { toolCall: { name: EVIL, id: EVIL, arguments: EVIL } }] }],
        outputMessages: [{ role: "assistant", finishReason: EVIL, parts: [{ toolCallResponse: { id: EVIL, result: EVIL } }] }],
      },
    };
    const evilDocs = { ...evil, spanId: b64([6, 6, 6, 6, 6, 6, 6, 2]), parentSpanId: evil.spanId, kind: "SPAN_KIND_RETRIEVAL", content: { retrieval: { dataSource: EVIL, query: EVIL, documents: [{ id: EVIL, sourceUri: EVIL_URL, version: EVIL, text: EVIL, score: 1 }] } } };
    const evilTool = { ...evil, spanId: b64([6, 6, 6, 6, 6, 6, 6, 3]), parentSpanId: evil.spanId, kind: "SPAN_KIND_TOOL", content: { toolCall: { name: EVIL, callId: EVIL, type: EVIL, arguments: EVIL, result: EVIL } } };
    const evilGuard = { ...evil, spanId: b64([6, 6, 6, 6, 6, 6, 6, 4]), parentSpanId: evil.spanId, kind: "SPAN_KIND_GUARDRAIL", content: { guardrail: { name: EVIL, outcome: "GUARDRAIL_OUTCOME_BLOCKED", detail: EVIL } } };
    await rpc(ingest, "IngestService/AppendSpans", { spans: [evil, evilDocs, evilTool, evilGuard] }, ACME);
    // A trace of BIG spans, appended in pages of at most 1000.
    const big = [];
    for (let i = 0; i < BIG; i++) {
      big.push({
        traceId: b64(bigTrace), spanId: b64([5, 0, 0, 0, 0, 0, i >> 8, i & 255]), ...(i ? { parentSpanId: b64([5, 0, 0, 0, 0, 0, 0, 0]) } : {}),
        name: i ? `step ${i}` : "batch job", kind: i ? "SPAN_KIND_TOOL" : "SPAN_KIND_AGENT", startTime: at(1000 + i), endTime: at(1001 + i), subjectId: "batch", sessionId: "batch",
      });
    }
    await rpc(ingest, "IngestService/AppendSpans", { spans: big }, ACME);
    // 30 traces of one subject: more than a page of search results.
    const bulk = [];
    for (let i = 0; i < 30; i++) bulk.push({ traceId: b64(bulkTrace(i)), spanId: b64([7, 0, 0, 0, 0, 0, 0, i]), name: `bulk ${i}`, kind: "SPAN_KIND_GENERATION", startTime: at(5000 + i), endTime: at(5001 + i), subjectId: "bulk-subject", sessionId: `bulk-${i}` });
    // 105 subjects, each to be erased: more than a page of past erasures.
    for (let i = 0; i < 105; i++) bulk.push({ traceId: b64([0x71, ...Array(13).fill(0), i >> 8, i & 255]), spanId: b64([7, 1, 0, 0, 0, 0, 0, i]), name: `gone ${i}`, kind: "SPAN_KIND_GENERATION", startTime: at(6000 + i), endTime: at(6001 + i), subjectId: `gone-${i}`, sessionId: `gone-${i}` });
    await rpc(ingest, "IngestService/AppendSpans", { spans: bulk, waitCheckpoint: true }, ACME);
  });

  test("hostile strings in spans, versions, holds and erasures are shown as text and never run", async () => {
    await rpc(tokens.acmeCompliance, "RetentionService/PlaceHold", { scope: { subjectId: "nobody" }, caseRef: EVIL, reason: EVIL }, ACME);
    const page = await signIn("multi");
    const dialogs = [];
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      d.dismiss();
    });
    await page.getByTestId("tenant-select").selectOption(ACME);
    await page.goto(`${BASE}/ui/traces/${hex(evilTrace)}`);
    await page.getByTestId("waterfall").waitFor();
    for (const row of await page.getByTestId("span-row").all()) {
      await row.click();
      assert.ok((await page.getByTestId("span-detail").textContent())?.includes(EVIL), "the hostile text is shown as text");
    }
    await page.getByTestId("versions").locator("summary").first().click();
    await page.getByTestId("tree-tab").click();
    await shot(page, "hostile-trace");
    assert.equal(await page.locator("main img, main script, main iframe, main object, main embed").count(), 0, "no element made from data");
    assert.equal(await page.locator('[href^="javascript:"], [src^="javascript:"]').count(), 0, "no javascript: URL");
    assert.equal(await page.evaluate(() => /** @type {any} */ (window).__pwned), undefined);
    await page.close();
    const co = await signIn("acmeCompliance");
    await co.getByRole("link", { name: "Legal holds" }).click();
    await co.getByTestId("hold-row").first().waitFor();
    assert.ok((await co.getByTestId("holds").textContent())?.includes(EVIL));
    assert.equal(await co.locator("main img, main script").count(), 0);
    assert.equal(await co.evaluate(() => /** @type {any} */ (window).__pwned), undefined);
    await co.close();
    assert.deepEqual(dialogs, []);
  });

  test("every answer of the server carries the security headers, and none of the API's is cached or sniffed", async () => {
    const cases = [
      ["HEAD", "/ui/"],
      ["GET", "/ui"],
      ["GET", "/ui/assets/missing.js"],
      ["GET", "/ui/%2e%2e/%2e%2e/etc/passwd"],
      ["GET", "/x/../ui/"],
      ["GET", "//ui/"],
      ["PUT", "/ui/index.html"],
    ];
    for (const [method, path] of cases) {
      const r = await fetch(BASE + path, { method, redirect: "manual" });
      assert.ok(r.status !== 200 || (await r.text()).length === 0 || method === "HEAD" || r.headers.get("content-type")?.startsWith("text/html"), `${method} ${path}`);
      for (const h of ["content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"]) assert.ok(r.headers.get(h), `${method} ${path} (${r.status}) lacks ${h}`);
    }
    // The API's answers hold personal data: never cached, never sniffed, never framed.
    for (const [token, method] of [[tokens.auditor, "LedgerService/ListAccessLog"], ["", "LedgerService/ListAccessLog"], [tokens.auditor, "AuditService/GetTrace"]]) {
      const headers = { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
      const r = await fetch(`${BASE}/veritrace.v1.${method}`, { method: "POST", headers, body: JSON.stringify(method.endsWith("GetTrace") ? { traceId: b64(traceId(1)) } : {}) });
      assert.equal(r.headers.get("cache-control"), "no-store", `${method} (${r.status})`);
      assert.equal(r.headers.get("x-content-type-options"), "nosniff", `${method} (${r.status})`);
      assert.ok(r.headers.get("content-security-policy")?.includes("frame-ancestors 'none'"), `${method} (${r.status})`);
    }
  });

  test("a key bound to two tenants switches tenant without showing the other tenant's data", async () => {
    const page = await signIn("multi");
    assert.equal(await page.getByTestId("tenant-select").inputValue(), "default");
    await page.getByRole("link", { name: "Traces" }).click();
    await page.locator('input[name="subject"]').fill("customer-42");
    await page.getByTestId("search").click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="trace-row"]').length === 2);
    // The default tenant's answer is slow; the user switches to acme before it comes.
    await page.route("**/veritrace.v1.AuditService/QueryTraces", async (route) => {
      const tenant = route.request().headers()["veritrace-tenant"];
      const resp = await route.fetch();
      if (tenant === "default") await sleep(1500);
      await route.fulfill({ response: resp });
    });
    await page.getByTestId("search").click();
    await page.getByTestId("tenant-select").selectOption(ACME);
    await sleep(2000);
    assert.equal(await page.getByTestId("trace-row").count(), 0, "acme has no trace of customer-42: the default tenant's rows are not shown under acme");
    assert.ok(!(await page.locator("main").textContent())?.includes("invoke_agent support"));
    await page.unroute("**/veritrace.v1.AuditService/QueryTraces");
    // A trace of the default tenant, opened under acme, is not found there.
    await page.goto(`${BASE}/ui/traces/${hexId(1)}`);
    await page.getByText("not_found").waitFor();
    assert.equal(await page.getByTestId("tenant-select").inputValue(), ACME, "the tenant chosen stays chosen in this tab");
    await page.close();
  });

  test("signing out forgets everything: filters, results and the last bundle", async () => {
    const page = await signIn("auditor");
    await page.getByRole("link", { name: "Traces" }).click();
    await page.locator('input[name="subject"]').fill("customer-42");
    await page.getByTestId("search").click();
    await page.getByTestId("trace-row").first().waitFor();
    await Promise.all([page.waitForEvent("download"), page.getByTestId("export").click()]);
    await page.getByTestId("exported").waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByTestId("api-key").waitFor();
    // Before anyone signs in again, the verify page holds no bundle of the last user's.
    await page.getByRole("link", { name: "verify it in this browser" }).click();
    await page.getByTestId("bundle-key").waitFor();
    assert.equal(await page.getByTestId("bundle-name").count(), 0, "the last user's bundle is still in memory");
    // The next user of the tab sees none of the last one's filters or results.
    await page.goto(`${BASE}/ui/`);
    await page.getByTestId("api-key").fill(tokens.compliance);
    await page.getByTestId("sign-in").click();
    await page.getByRole("link", { name: "Traces" }).click();
    await page.getByTestId("search-form").waitFor();
    assert.equal(await page.locator('input[name="subject"]').inputValue(), "", "the last user's subject filter");
    assert.equal(await page.getByTestId("results").count(), 0, "the last user's results");
    await page.close();
  });

  test("a key revoked while signed in is signed out at its next request", async () => {
    const created = await rpc(tokens.admin, "AdminService/CreateKey", { role: "ROLE_AUDITOR", tenants: ["default"], label: "e2e soon revoked" });
    tokens.revoked = created.token;
    const page = await signIn("revoked");
    await page.getByRole("link", { name: "Traces" }).click();
    await page.getByTestId("search-form").waitFor();
    await rpc(tokens.admin, "AdminService/RevokeKey", { id: created.key.id });
    await page.locator('input[name="subject"]').fill("customer-42");
    await page.getByTestId("search").click();
    await page.getByTestId("api-key").waitFor({ timeout: 5000 });
    assert.ok((await page.locator(".signin").textContent())?.includes("unauthenticated"), "says why");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("veritrace.apiKey")), null);
    await page.close();
  });

  test("a server that lies about entries, proofs, checkpoints or times is caught", async () => {
    const page = await signIn("auditor");
    await page.goto(`${BASE}/ui/traces/${hexId(2)}`);
    await page.getByTestId("waterfall").waitFor();
    const verify = async () => {
      await page.getByTestId("log-key").fill(logPub);
      await page.getByTestId("verify").click();
      await page.locator('[data-testid="verify-result"], [data-testid="verify-panel"] [role="alert"]').first().waitFor();
      return page.getByTestId("verify-panel").textContent();
    };
    const failed = async (check) => {
      const text = await verify();
      assert.ok(await page.getByTestId("not-verified").isVisible(), `${check}: ${text}`);
      assert.equal(await page.locator(`li[data-check="${check}"]`).getAttribute("data-ok"), "false", check);
    };
    const lie = async (method, edit, check) => {
      await page.route(`**/veritrace.v1.${method}`, async (route) => {
        const req = route.request().postDataJSON();
        const resp = await route.fetch({ postData: JSON.stringify(edit.req ? edit.req(req) : req) });
        const body = await resp.json();
        await route.fulfill({ response: resp, json: edit.resp ? edit.resp(body) : body });
      });
      await page.reload();
      await page.getByTestId("waterfall").waitFor();
      await failed(check);
      await page.unroute(`**/veritrace.v1.${method}`);
    };
    // Another entry (of trace 1) for the span of trace 2.
    await lie("LedgerService/GetEntry", { req: (r) => ({ ...r, index: "3" }) }, "entry headers");
    // The proof of another index.
    await lie("LedgerService/GetInclusionProof", { req: (r) => ({ ...r, index: String(Number(r.index ?? 0) ^ 1) }) }, "inclusion proofs");
    // Acme's checkpoint, signed by the same key.
    const acme = await rpc(tokens.multi, "LedgerService/GetCheckpoint", { fresh: true }, ACME);
    await lie("LedgerService/GetCheckpoint", { resp: () => acme }, "checkpoint signature");
    // The time an entry was appended, shown on the page.
    await lie("AuditService/GetTrace", { resp: (b) => ((b.roots[0].appendedAt = "2020-01-01T00:00:00Z"), b) }, "entry headers");
    // The time a version was registered.
    await lie("AuditService/GetTrace", { resp: (b) => ((b.versions[0].registeredAt = "2020-01-01T00:00:00Z"), b) }, "entry headers");
    await page.reload();
    await page.getByTestId("waterfall").waitFor();
    await verify();
    await page.getByTestId("verified").waitFor();
    await page.close();
  });

  test(`a trace of ${BIG} spans is shown whole and verified in the browser`, async () => {
    const page = await signIn("multi");
    await page.getByTestId("tenant-select").selectOption(ACME);
    await page.getByRole("link", { name: "Traces" }).click();
    await page.locator('input[name="subject"]').fill("batch");
    await page.getByTestId("search").click();
    await page.getByTestId("trace-row").first().waitFor();
    assert.ok((await page.getByTestId("trace-row").first().textContent())?.includes("500+"), "the summary says it read 500 spans of more");
    await page.getByTestId("trace-row").first().click();
    await page.getByTestId("waterfall").waitFor();
    assert.equal(await page.getByTestId("span-row").count(), BIG);
    await page.getByTestId("log-key").fill(logPub);
    await page.getByTestId("verify").click();
    await page.getByTestId("verify-result").waitFor({ timeout: 120_000 });
    assert.ok(await page.getByTestId("verified").isVisible(), await page.getByTestId("verify-result").textContent());
    assert.ok((await page.locator('li[data-check="inclusion proofs"]').textContent())?.includes(`${BIG} ok`));
    await shot(page, "big-trace-verified");
    await page.close();
  });

  test("search results and the access log page forward and back", async () => {
    const page = await signIn("multi");
    await page.getByTestId("tenant-select").selectOption(ACME);
    await page.getByRole("link", { name: "Traces" }).click();
    await page.locator('input[name="subject"]').fill("bulk-subject");
    await page.getByTestId("search").click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="trace-row"]').length === 25);
    const first = await page.getByTestId("trace-row").first().textContent();
    await page.getByTestId("next-page").click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="trace-row"]').length === 5);
    assert.ok(await page.getByTestId("next-page").isDisabled(), "no page after the last");
    await page.getByRole("button", { name: "← Previous" }).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="trace-row"]').length === 25);
    assert.equal(await page.getByTestId("trace-row").first().textContent(), first);
    // The access log of acme: the verification above read 600 entries, more than a page.
    await page.getByRole("link", { name: "Access log" }).click();
    await page.getByTestId("access-row").first().waitFor();
    const firstPage = await page.getByTestId("access-row").allTextContents();
    assert.equal(firstPage.length, 100);
    await page.getByRole("button", { name: "Later →" }).click();
    await page.waitForFunction((f) => document.querySelector('[data-testid="access-row"]')?.textContent !== f, firstPage[0]);
    const second = await page.getByTestId("access-row").allTextContents();
    assert.ok(parseInt(second[0]) > parseInt(firstPage[99]), `page 2 starts at ${parseInt(second[0])}, after page 1's last ${parseInt(firstPage[99])}`);
    await page.getByRole("button", { name: "← Earlier" }).click();
    await page.waitForFunction((f) => document.querySelector('[data-testid="access-row"]')?.textContent === f, firstPage[0]);
    await page.close();
  });

  test("past erasure requests page, and a past receipt downloads and verifies", async () => {
    for (let i = 0; i < 105; i++) {
      await rpc(tokens.acmeCompliance, "RetentionService/Erase", { requestId: `e2e-bulk-${String(i).padStart(3, "0")}`, subjectId: `gone-${i}`, legalBasis: "GDPR Art. 17(1)(a)", reason: "e2e" }, ACME);
    }
    const page = await signIn("acmeCompliance");
    await page.getByRole("link", { name: "Erasure" }).click();
    await page.getByTestId("erasure-row").first().waitFor();
    const seen = new Set(await page.getByTestId("erasure-row").locator("code").allTextContents());
    await page.getByTestId("erasures-next").click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="erasure-row"]').length < 100);
    for (const id of await page.getByTestId("erasure-row").locator("code").allTextContents()) seen.add(id);
    assert.equal(seen.size, 105, "every request, on one page or the next");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("erasure-row").first().getByRole("button", { name: "Download" }).click()]);
    const saved = JSON.parse(readFileSync((await download.path()) ?? "", "utf8"));
    assert.ok(saved.signature.includes("\u2014 ") && saved.receipt.request_id, "a receipt with its signed note");

    // A past receipt checks in the browser: signature, checkpoint, its tombstone parts and counts.
    await page.evaluate((k) => localStorage.setItem("veritrace.pinnedLogKey", k), logPub);
    const check = async () => {
      await page.getByTestId("erasure-row").first().getByTestId("open-receipt").click();
      const panel = page.getByTestId("past-erasure");
      await panel.getByTestId("check-receipt").click();
      return receiptChecks(panel);
    };
    assert.deepEqual(await check(), { "receipt signature": "true", "receipt checkpoint": "true", "tombstone parts": "true", counts: "true" });
    // A receipt whose count was changed and signed again with the log key
    // (a server lying about an erasure) fails the counts, its parts hold.
    await tamperReceipts(page, "GetErasure", (r) => r.erased_count++, true);
    assert.deepEqual(await check(), { "receipt signature": "true", "receipt checkpoint": "true", "tombstone parts": "true", counts: "false" });
    await page.getByTestId("receipt-not-verified").waitFor();
    await shot(page, "erasure-receipt-tampered-count");
    await page.unroute("**/veritrace.v1.RetentionService/GetErasure");
    // One naming a part by another leaf hash fails the parts (and the counts are not checked).
    await tamperReceipts(page, "GetErasure", (r) => (r.tombstones[0].leaf_hash = r.tombstones[0].leaf_hash.replace(/^./, (c) => (c === "0" ? "1" : "0"))), true);
    assert.deepEqual(await check(), { "receipt signature": "true", "receipt checkpoint": "true", "tombstone parts": "false", counts: "false" });
    // The verdict and the list say what did not run, in veritrace verify-receipt's words, never that it failed.
    const verdict = async () => (await page.getByTestId("past-erasure").getByTestId("receipt-not-verified").textContent()) ?? "";
    const states = async () => {
      const out = {};
      for (const li of await page.getByTestId("past-erasure").locator("li[data-check]").all()) out[(await li.getAttribute("data-check")) ?? ""] = await li.getAttribute("data-state");
      return out;
    };
    assert.equal(await verdict(), "NOT VERIFIED: tombstone parts failed; counts not checked (not every tombstone part holds).");
    assert.deepEqual(await states(), { "receipt signature": "ok", "receipt checkpoint": "ok", "tombstone parts": "failed", counts: "not-checked" });
    await page.unroute("**/veritrace.v1.RetentionService/GetErasure");
    // One changed and not signed again fails the signature; nothing else runs.
    await tamperReceipts(page, "GetErasure", (r) => r.held_count++, false);
    assert.deepEqual(await check(), { "receipt signature": "false", "receipt checkpoint": "false", "tombstone parts": "false", counts: "false" });
    assert.equal(
      await verdict(),
      "NOT VERIFIED: receipt signature failed; receipt checkpoint, tombstone parts, counts not checked (the receipt's signature does not hold).",
    );
    assert.deepEqual(await states(), { "receipt signature": "failed", "receipt checkpoint": "not-checked", "tombstone parts": "not-checked", counts: "not-checked" });
    await page.unroute("**/veritrace.v1.RetentionService/GetErasure");
    await page.close();
  });

  test("an admin creates a key (its token shown once) and revokes it, and creates a tenant", async () => {
    const page = await signIn("admin");
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByTestId("key-row").first().waitFor();
    await page.locator('select[name="role"]').selectOption({ label: "auditor" });
    await page.locator('input[name="key-tenants"]').fill(ACME);
    await page.locator('input[name="label"]').fill("e2e made in the console");
    await page.getByTestId("create-key").click();
    const token = (await page.getByTestId("new-token").locator("pre").textContent())?.trim() ?? "";
    assert.match(token, /^vtk_/);
    await page.getByTestId("keys").getByText("e2e made in the console").waitFor();
    const who = await rpc(token, "IdentityService/WhoAmI", {});
    assert.deepEqual(who.tenants, [ACME]);
    // Shown once: gone when the page is left, and in no storage.
    await page.getByRole("link", { name: "Tenants" }).click();
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByTestId("key-row").first().waitFor();
    assert.equal(await page.getByTestId("new-token").count(), 0);
    assert.ok(!(await page.content()).includes(token));
    assert.ok(!(await page.evaluate(() => JSON.stringify(sessionStorage) + JSON.stringify(localStorage))).includes(token));
    const row = page.getByTestId("key-row").filter({ hasText: "e2e made in the console" });
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.getByText("revoked").waitFor();
    await assert.rejects(rpc(token, "IdentityService/WhoAmI", {}), /401/);
    await shot(page, "keys");
    await page.getByRole("link", { name: "Tenants" }).click();
    await page.locator('input[name="tenant-name"]').fill("e2e-new");
    await page.getByRole("button", { name: "Create tenant" }).click();
    await page.getByText("Tenant e2e-new created.").waitFor();
    // The list is read again after the message: wait for it, not for the old list.
    await page.getByTestId("tenants").getByText("e2e-new").waitFor();
    await page.close();
  });

  test("a compliance officer shortens a rule with a reason and sweeps now", async () => {
    const page = await signIn("acmeCompliance");
    await page.getByRole("link", { name: "Retention" }).click();
    await page.getByTestId("retention-policy").waitFor();
    // A colleague records a change after the page showed the policy: the
    // page's change, made from the revision it showed, is refused and
    // records nothing over theirs.
    const shown = (await rpc(tokens.acmeCompliance, "RetentionService/GetRetention", {}, ACME)).policy;
    const theirs = structuredClone(shown);
    theirs.defaultRule.days += 10;
    const recorded = (await rpc(tokens.acmeCompliance, "RetentionService/SetRetention", { policy: theirs, reason: "e2e: a colleague" }, ACME)).policy;
    await page.locator('input[name="retention-reason"]').fill("e2e: from what the page showed");
    await page.locator('input[name="default-days"]').fill(String(shown.defaultRule.days + 20));
    await page.getByTestId("save-retention").click();
    const refused = page.getByTestId("retention-edit").getByRole("alert");
    await refused.waitFor();
    const text = await refused.textContent();
    assert.ok(text?.includes(`the policy is at revision ${recorded.revision}; you edited revision ${shown.revision ?? 0}`), text);
    const now = (await rpc(tokens.acmeCompliance, "RetentionService/GetRetention", {}, ACME)).policy;
    assert.equal(now.revision, recorded.revision, "the stale change was recorded");
    assert.equal(now.defaultRule.days, theirs.defaultRule.days);
    // Shown again, the change is made from the current revision and recorded.
    await page.getByTestId("reload-retention").click();
    await page.waitForFunction((days) => document.querySelector('input[name="default-days"]')?.value === String(days), theirs.defaultRule.days);
    const before = Number(await page.locator('input[name="default-days"]').inputValue());
    assert.equal(before, theirs.defaultRule.days);
    await page.locator('input[name="retention-reason"]').fill("");
    await page.locator('input[name="default-days"]').fill(String(before - 1));
    await page.getByTestId("save-retention").click();
    await page.getByTestId("retention-edit").getByRole("alert").waitFor(); // shorter needs a reason
    await page.locator('input[name="retention-reason"]').fill("e2e: shorter by a day");
    await page.getByTestId("save-retention").click();
    await page.getByText(/Saved revision \d+/).waitFor();
    assert.ok((await page.getByTestId("retention-policy").textContent())?.includes(`${before - 1} days`));
    assert.ok((await page.getByTestId("retention-policy").textContent())?.includes("e2e: shorter by a day"));
    await page.getByTestId("sweep").click();
    await page.getByText(/Expired \d+ entries/).waitFor();
    await shot(page, "retention");
    await page.close();
  });

  test("a trace whose spans name a loop of parents, a missing parent or a chain past the nesting cap shows every span, marked", async () => {
    const t0 = Date.now() - 30_000;
    const at = (ms) => new Date(t0 + ms).toISOString();
    const span = (n, parent, name) => ({
      traceId: b64(traceId(9)), spanId: b64([0, 0, 0, 0, 0, 9, n >> 8, n & 255]), ...(parent !== undefined ? { parentSpanId: b64([0, 0, 0, 0, 0, 9, parent >> 8, parent & 255]) } : {}),
      name, kind: "SPAN_KIND_CHAIN", subjectId: "customer-loop", startTime: at(n), endTime: at(n + 1), status: { code: "STATUS_CODE_OK" },
    });
    // 1 and 2 name each other; 3 names a span never sent; 10..114 is a chain of 105, past the cap of 32.
    const spans = [span(1, 2, "loop a"), span(2, 1, "loop b"), span(3, 999, "orphan")];
    for (let n = 10; n < 115; n++) spans.push(span(n, n === 10 ? undefined : n - 1, `step ${n}`));
    await rpc(tokens.ingester, "IngestService/AppendSpans", { spans });
    const page = await signIn("auditor");
    await page.goto(`${BASE}/ui/traces/${hexId(9)}`);
    await page.getByTestId("waterfall").waitFor();
    assert.equal(await page.getByTestId("span-row").count(), 3 + 105);
    const wf = await page.getByTestId("waterfall").textContent();
    for (const s of ["parent loop", "parent not in trace", "nested too deep", "loop a", "loop b", "step 114"]) {
      assert.ok(wf?.includes(s), `the waterfall lacks ${s}`);
    }
    await page.getByTestId("span-row").filter({ hasText: "orphan" }).click();
    assert.ok((await page.getByTestId("span-placement").textContent())?.includes("not among this trace's spans"));
    await page.getByTestId("tree-tab").click();
    assert.equal(await page.getByTestId("tree").locator("li").count(), 3 + 105);
    await page.close();
  });

  test("a hold submitted again after its answer was lost and the hold released meanwhile is said not to be in force", async () => {
    const page = await signIn("compliance");
    await page.getByRole("link", { name: "Legal holds" }).click();
    // The server places the hold; its answer is lost (a reset); another
    // officer releases the hold before the form is submitted again.
    const sent = await loseFirstPlaceHold(page);
    await page.locator('select[name="scope"]').selectOption("trace");
    await page.locator('input[name="scope-value"]').fill(hexId(10));
    await page.locator('input[name="case"]').fill("CASE-GONE");
    await page.locator('input[name="reason"]').fill("answer lost, then released");
    await page.getByTestId("place-hold").click();
    await page.getByTestId("hold-request-id").waitFor();
    const [h] = (await rpc(tokens.compliance, "RetentionService/ListHolds", {})).holds.filter((h) => h.caseRef === "CASE-GONE");
    await rpc(tokens.compliance, "RetentionService/ReleaseHold", { holdId: h.id, reason: "settled meanwhile" });
    await page.getByTestId("place-hold").click();
    await page.getByTestId("hold-released").waitFor();
    assert.equal(sent[1], sent[0]);
    assert.equal(await page.getByTestId("hold-placed").count(), 0, "a released hold was announced as placed");
    const text = (await page.getByTestId("hold-released").textContent()) ?? "";
    for (const want of [h.id, sent[0], "NOT in force", "settled meanwhile"]) {
      assert.ok(text.includes(want), `the answer "${text}" does not say ${want}`);
    }
    // The form is kept; submitting it again places a new hold, in force.
    await page.getByTestId("place-hold").click();
    await page.getByTestId("hold-placed").waitFor();
    assert.equal(sent.length, 3);
    assert.notEqual(sent[2], sent[0]);
    const active = (await rpc(tokens.compliance, "RetentionService/ListHolds", {})).holds.filter((h) => h.caseRef === "CASE-GONE");
    assert.equal(active.length, 1);
    assert.equal(active[0].requestId, sent[2]);
    await rpc(tokens.compliance, "RetentionService/ReleaseHold", { holdId: active[0].id, reason: "test done" });
    await page.close();
    const reset = pageErrors.filter((e) => e.endsWith("Failed to load resource: net::ERR_CONNECTION_RESET"));
    assert.equal(reset.length, 1, `the browser's errors: ${pageErrors}`);
    pageErrors.splice(pageErrors.indexOf(reset[0]), 1);
  });

  test("still no script error, no CSP violation, no request to another origin", () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(foreignRequests, []);
  });
});
