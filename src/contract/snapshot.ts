/**
 * The `gpu-bridge-snapshot/v1` wire format and its publish lines (docs/protocol.md#6-snapshot-format-and-publish-lines), as pure
 * functions. A snapshot the VM would refuse is caught here, before anything is sent.
 */
import type { Namespace } from "./namespace.ts";
import { LIMITS } from "./limits.ts";
import { encodeBase64 } from "../util/base64.ts";
import { sha256Hex } from "../util/sha256.ts";

export const SNAPSHOT_SCHEMA = "gpu-bridge-snapshot/v1";
/** Echo payload limit (128) minus `b64:`, rounded down to a multiple of 4. */
export const B64_CHUNK = 124;

/** A snapshot ready to send: its text, UTF-8 bytes and hash. */
export interface Snapshot {
  readonly text: string;
  readonly bytes: Uint8Array;
  readonly sha256: string;
}

/** Renders the snapshot text of `ns`. */
export function renderSnapshot(ns: Namespace): string {
  let out = `schema ${SNAPSHOT_SCHEMA}\n`;
  for (const n of ns.nodes) {
    out += `node id=${n.id} info=${encodeBase64(n.info)} ctl=${encodeBase64(n.ctl)} ` +
      `lease=${encodeBase64(n.lease)} status=${encodeBase64(n.status)}\n`;
  }
  for (const m of ns.models) out += `model id=${m.model_id} manifest=${encodeBase64(m.manifest_toml)}\n`;
  out += `active id=${ns.active}\n`;
  out += `telemetry schema=${encodeBase64(ns.telemetrySchema)}\n`;
  out += "end\n";
  return out;
}

/** Builds the snapshot of `ns` with its hash. */
export function makeSnapshot(ns: Namespace): Snapshot {
  const text = renderSnapshot(ns);
  const bytes = new TextEncoder().encode(text);
  return { text, bytes, sha256: sha256Hex(bytes) };
}

/** Raised for a snapshot the VM's receiver would refuse for its size. */
export class SnapshotTooLargeError extends Error {
  override name = "SnapshotTooLargeError";
}

/** The `begin`, `b64:` and `end` lines that carry `snap` into `/gpu/bridge/ctl`. */
export function publishLines(snap: Snapshot): string[] {
  const n = snap.bytes.length;
  if (n < 1 || n > LIMITS.snapshotBytes) {
    throw new SnapshotTooLargeError(
      `Cannot publish snapshot: it is ${n} bytes and the VM accepts 1-${LIMITS.snapshotBytes}; trim the registry or logs`,
    );
  }
  const b64 = encodeBase64(snap.bytes);
  const lines = [`begin bytes=${n} sha256=${snap.sha256}`];
  for (let i = 0; i < b64.length; i += B64_CHUNK) lines.push(`b64:${b64.slice(i, i + B64_CHUNK)}`);
  lines.push("end");
  return lines;
}
