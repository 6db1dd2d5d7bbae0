/**
 * The `--list` namespace JSON (docs/protocol.md#4-the-list-json-and-escaping): hand-formatted with a fixed key order and
 * the reference's escaping, byte for byte. Nothing here may be replaced by `JSON.stringify`.
 */
import { quote } from "./escape.ts";
import type { Namespace } from "./namespace.ts";

/**
 * Renders `ns` as the reference's `--list` output, trailing newline included. Loops rather than
 * `Array.prototype.map`: in JavaScriptCore `map` is a builtin written in JavaScript, compiled on
 * its first call, which costs `--list` about 3% of its start-up instructions.
 */
export function renderList(ns: Namespace): string {
  let out = '{\n  "nodes": [\n';
  let sep = "";
  for (const n of ns.nodes) {
    out += sep +
      "    {\n" +
      `      "id": ${quote(n.id)},\n` +
      `      "info_payload": ${quote(n.info)},\n` +
      `      "ctl_payload": ${quote(n.ctl)},\n` +
      `      "lease_payload": ${quote(n.lease)},\n` +
      `      "status_payload": ${quote(n.status)}\n` +
      "    }";
    sep = ",\n";
  }
  out += `\n  ],\n  "models": {\n    "active": ${quote(ns.active)},\n    "available": [\n`;
  sep = "";
  for (const m of ns.models) {
    out += sep +
      "      {\n" +
      `        "model_id": ${quote(m.model_id)},\n` +
      `        "manifest_toml": ${quote(m.manifest_toml)}\n` +
      "      }";
    sep = ",\n";
  }
  return out + `\n    ]\n  },\n  "telemetry_schema": ${ns.telemetrySchema}\n}\n`;
}
