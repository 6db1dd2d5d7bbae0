/**
 * The `/gpu` tree the mock console holds, as path -> text. The node files are the contract's
 * (`info`, `ctl`, `lease`, `status`); the layout of models and telemetry under `/gpu` is our
 * mock's choice, since the contract does not fix those paths.
 */
import type { Namespace } from "../../src/contract/namespace.ts";

/** The files one snapshot produces. */
export function treeFiles(ns: Namespace): Map<string, string> {
  const files = new Map<string, string>();
  for (const n of ns.nodes) {
    files.set(`/gpu/${n.id}/info`, n.info);
    files.set(`/gpu/${n.id}/ctl`, n.ctl);
    files.set(`/gpu/${n.id}/lease`, n.lease);
    files.set(`/gpu/${n.id}/status`, n.status);
  }
  for (const m of ns.models) files.set(`/gpu/models/available/${m.model_id}/manifest.toml`, m.manifest_toml);
  files.set("/gpu/models/active", ns.active);
  files.set("/gpu/telemetry/schema.json", ns.telemetrySchema);
  return files;
}
