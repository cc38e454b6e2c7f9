// History routing under /ui/. Routes hold no secrets and no personal data
// (trace ids only); search filters stay in memory.

import { useEffect, useState } from "preact/hooks";

export const BASE = "/ui";

export function currentPath(): string {
  const p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return p === "" ? "/" : p;
}

const listeners = new Set<() => void>();

export function navigate(path: string): void {
  history.pushState(null, "", BASE + path);
  listeners.forEach((l) => l());
  window.scrollTo(0, 0);
}

export function useRoute(): string {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const update = () => setPath(currentPath());
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return path;
}

/** Handles a click on an in-console link without reloading the page. */
export function linkClick(path: string) {
  return (e: MouseEvent) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate(path);
  };
}
