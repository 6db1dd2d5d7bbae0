/**
 * PCI bus ids: NVML writes `%08X:%02X:%02X.0`, CUDA `%04x:%02x:%02x.0`. Joining the two needs
 * one normal form.
 */

/** `domain:bus:device.function` in lowercase with a 4-digit domain, or null if unparseable. */
export function normalizePciBusId(id: string): string | null {
  const m = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])$/.exec(id.trim());
  if (m === null) return null;
  const hex = (s: string, w: number) => parseInt(s, 16).toString(16).padStart(w, "0");
  return `${hex(m[1]!, 4)}:${hex(m[2]!, 2)}:${hex(m[3]!, 2)}.${m[4]}`;
}

/** `major.minor` from a driver version integer (12060 -> `12.6`). */
export function cudaVersionText(v: number): string {
  if (!Number.isInteger(v) || v <= 0) return "unknown";
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}
