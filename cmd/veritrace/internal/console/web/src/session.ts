// What the console keeps in the browser. The API key lives only in this
// tab's session storage (gone when the tab closes; never in a URL, a cookie
// or local storage). The log's public key and pinned checkpoints are not
// secret and persist in local storage, so that an auditor pins them once.

const API_KEY = "veritrace.apiKey";
const TENANT = "veritrace.tenant";
const LOG_KEY = "veritrace.pinnedLogKey";
const CHECKPOINT = "veritrace.pinnedCheckpoint:";

// What the console holds in memory for the user signed in (search filters,
// the last bundle exported) registers here to be forgotten at sign-out, so
// that the next user of the tab finds none of it.
const forgetters = new Set<() => void>();

/** Registers fn to run when the user signs out (or the key stops working). */
export function forgetOnSignOut(fn: () => void): void {
  forgetters.add(fn);
}

export const session = {
  apiKey: (): string | null => sessionStorage.getItem(API_KEY),
  setApiKey: (k: string) => sessionStorage.setItem(API_KEY, k),
  tenant: (): string | null => sessionStorage.getItem(TENANT),
  setTenant: (t: string) => sessionStorage.setItem(TENANT, t),
  signOut: () => {
    sessionStorage.removeItem(API_KEY);
    sessionStorage.removeItem(TENANT);
    forgetters.forEach((f) => f());
  },
};

export const pins = {
  logKey: (): string => localStorage.getItem(LOG_KEY) ?? "",
  setLogKey: (k: string) => (k ? localStorage.setItem(LOG_KEY, k.trim()) : localStorage.removeItem(LOG_KEY)),
  checkpoint: (origin: string): string | null => localStorage.getItem(CHECKPOINT + origin),
  setCheckpoint: (origin: string, note: string) => localStorage.setItem(CHECKPOINT + origin, note),
  clearCheckpoint: (origin: string) => localStorage.removeItem(CHECKPOINT + origin),
};
