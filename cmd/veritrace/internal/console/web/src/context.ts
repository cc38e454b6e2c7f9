import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "./api";
import type { WhoAmIResponse } from "./gen/veritrace/v1/identity_pb";

/** Who is signed in, with what rights, on which tenant. */
export interface Ctx {
  api: Api;
  me: WhoAmIResponse;
  tenant: string;
  can: (perm: Permission) => boolean;
}

/** The permissions of docs/ACCESS.md that the console shows views for. */
export type Permission =
  | "read_entries"
  | "read_access_log"
  | "export_evidence"
  | "erase_data"
  | "manage_holds"
  | "manage_retention"
  | "manage_keys"
  | "manage_tenants"
  | "read_proofs"
  | "read_versions";

export const AppContext = createContext<Ctx | null>(null);

export function useCtx(): Ctx {
  const c = useContext(AppContext);
  if (!c) throw new Error("no signed-in context");
  return c;
}
