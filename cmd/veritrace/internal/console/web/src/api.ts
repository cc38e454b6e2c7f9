// Clients of the Veritrace API, generated from proto/ by buf, over the
// Connect protocol (JSON) to the origin that served the console. Every
// call carries the API key in the Authorization header and the tenant in
// Veritrace-Tenant; nothing else (no cookies, no referrer).

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AdminService } from "./gen/veritrace/v1/admin_pb";
import { AuditService } from "./gen/veritrace/v1/audit_pb";
import { IdentityService } from "./gen/veritrace/v1/identity_pb";
import { IngestService } from "./gen/veritrace/v1/ingest_pb";
import { LedgerService } from "./gen/veritrace/v1/ledger_pb";
import { RetentionService } from "./gen/veritrace/v1/retention_pb";

export interface Api {
  audit: Client<typeof AuditService>;
  ledger: Client<typeof LedgerService>;
  ingest: Client<typeof IngestService>;
  retention: Client<typeof RetentionService>;
  admin: Client<typeof AdminService>;
  identity: Client<typeof IdentityService>;
}

/**
 * Clients that authenticate with apiKey on tenant. onUnauthenticated is
 * called when the server no longer accepts the key (revoked or expired
 * while signed in), before the error reaches the caller.
 */
export function makeApi(apiKey: string, tenant?: string, onUnauthenticated?: (e: ConnectError) => void): Api {
  const headers: Interceptor = (next) => async (req) => {
    req.header.set("Authorization", "Bearer " + apiKey);
    if (tenant) req.header.set("Veritrace-Tenant", tenant);
    try {
      return await next(req);
    } catch (e) {
      if (onUnauthenticated && isUnauthenticated(e)) onUnauthenticated(e as ConnectError);
      throw e;
    }
  };
  const transport = createConnectTransport({
    baseUrl: location.origin,
    interceptors: [headers],
    fetch: (input, init) => fetch(input, { ...init, credentials: "omit", referrerPolicy: "no-referrer", cache: "no-store" }),
  });
  return {
    audit: createClient(AuditService, transport),
    ledger: createClient(LedgerService, transport),
    ingest: createClient(IngestService, transport),
    retention: createClient(RetentionService, transport),
    admin: createClient(AdminService, transport),
    identity: createClient(IdentityService, transport),
  };
}

/** A person-readable error: the Connect code and the server's message. */
export function errorText(e: unknown): string {
  if (e instanceof ConnectError) {
    const code = Code[e.code]?.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()) ?? String(e.code);
    return `${code}: ${e.rawMessage}`;
  }
  return e instanceof Error ? e.message : String(e);
}

export function isUnauthenticated(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Unauthenticated;
}
