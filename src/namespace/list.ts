/**
 * The `--list` namespace JSON (contract section 4): hand-formatted with a fixed key order and
 * the reference's escaping, byte for byte. Nothing here may be replaced by `JSON.stringify`.
 */
import { quote } from "./escape.ts";
import type { Namespace } from "./mod.ts";

/** Renders `ns` as the reference's `--list` output, trailing newline included. */
export function renderList(ns: Namespace): string {
  const nodes = ns.nodes.map(
    (n) =>
      "    {\n" +
      `      "id": ${quote(n.id)},\n` +
      `      "info_payload": ${quote(n.info)},\n` +
      `      "ctl_payload": ${quote(n.ctl)},\n` +
      `      "lease_payload": ${quote(n.lease)},\n` +
      `      "status_payload": ${quote(n.status)}\n` +
      "    }",
  );
  const models = ns.models.map(
    (m) =>
      "      {\n" +
      `        "model_id": ${quote(m.model_id)},\n` +
      `        "manifest_toml": ${quote(m.manifest_toml)}\n` +
      "      }",
  );
  return (
    "{\n" +
    '  "nodes": [\n' +
    nodes.join(",\n") +
    "\n  ],\n" +
    '  "models": {\n' +
    `    "active": ${quote(ns.active)},\n` +
    '    "available": [\n' +
    models.join(",\n") +
    "\n    ]\n" +
    "  },\n" +
    `  "telemetry_schema": ${ns.telemetrySchema}\n` +
    "}\n"
  );
}
