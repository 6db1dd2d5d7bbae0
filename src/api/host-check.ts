/**
 * DNS rebinding: a web page on `evil.example` whose name later resolves to 127.0.0.1 can read
 * unauthenticated GETs from a browser on this machine. The browser still sends `Host:
 * evil.example`, so the API answers only requests whose Host names the loopback or the
 * address it listens on. A wildcard listen (`--allow-remote` on 0.0.0.0 or ::) cannot know
 * the names clients use, and accepts any Host.
 */

const LOOPBACK = ["localhost", "127.0.0.1", "::1", "[::1]"];

/** The host names a Host header may carry for an API on `listenHost`, or null for any. */
export function allowedHosts(listenHost: string): ReadonlySet<string> | null {
  const h = listenHost.toLowerCase();
  if (h === "0.0.0.0" || h === "::" || h === "[::]") return null;
  return new Set([...LOOPBACK, h, h.includes(":") && !h.startsWith("[") ? `[${h}]` : h]);
}

/** Whether the `Host` header (with or without a port) names one of `allowed`. */
export function hostAllowed(header: string | null, allowed: ReadonlySet<string>): boolean {
  if (header === null) return false;
  const h = header.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:\[\]]+)(?::\d{1,5})?$/.exec(h);
  return m !== null && allowed.has(m[1]!);
}
