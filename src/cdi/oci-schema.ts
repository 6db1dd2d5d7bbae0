/** The OciSpec schema's verdict on a parsed config.json (oci.ts loads this only when needed). */
import * as v from "valibot";
import { OciSpec } from "./schema.ts";

/** `field: message` for the schema's first issue, or null when the schema accepts `raw`. */
export function ociProblem(raw: unknown): string | null {
  const parsed = v.safeParse(OciSpec, raw);
  if (parsed.success) return null;
  const issue = parsed.issues[0];
  // A JSON path as the problem's reader would write it: `mounts[2].options`, `linux.netDevices.eth0`.
  const field = issue.path?.map((p) => (typeof p.key === "number" ? `[${p.key}]` : `.${String(p.key)}`)).join("").replace(/^\./, "") ||
    "(root)";
  return `${field}: ${issue.message}`;
}
