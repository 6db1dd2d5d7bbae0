/**
 * The bridge's compatible core: inventory + registry -> namespace -> `--list` and `--publish`.
 */
import type { BridgeOptions } from "../cli/options.ts";
import { type InventoryBackend, selectBackend } from "../inventory/mod.ts";
import type { Logger } from "../util/log.ts";
import { MOCK_GPUS } from "../inventory/mock.ts";
import { builtinCatalog } from "../models/catalog.ts";
import type { ModelCatalog } from "../contract/models.ts";
import { buildNamespace, type Namespace } from "../contract/namespace.ts";

/**
 * The model catalog for `registry` (undefined: the built-in one). The registry reader, and
 * node:fs with it, loads only when a registry is given: node:fs alone costs about 2.5 ms of
 * start-up in a compiled binary.
 */
export async function loadCatalog(registry: string | undefined, log: Logger): Promise<ModelCatalog> {
  if (registry === undefined) return builtinCatalog();
  const { loadRegistry } = await import("../models/registry.ts");
  const { catalog, warnings } = loadRegistry(registry);
  for (const w of warnings) log.warn(w);
  return catalog;
}

/** The namespace from an open backend and the registry (undefined: the built-in catalog). */
export async function namespaceOf(backend: InventoryBackend, registry: string | undefined, log: Logger): Promise<Namespace> {
  return buildNamespace(await backend.list(), await loadCatalog(registry, log));
}

/**
 * Opens the inventory, reads it and the registry once, and builds the namespace. The mock
 * inventory with the built-in catalog is all constants, so that case opens nothing: it is
 * `--mock --list`, the path whose start-up is benchmarked, and the three async hops it skips
 * cost it about 3% of its instructions.
 */
export async function currentNamespace(
  options: Pick<BridgeOptions, "backend" | "sysRoot" | "registry">,
  log: Logger,
): Promise<Namespace> {
  if (options.backend === "mock" && options.registry === undefined) return buildNamespace(MOCK_GPUS, builtinCatalog());
  const backend = await selectBackend(options, log);
  try {
    return await namespaceOf(backend, options.registry, log);
  } finally {
    backend.close();
  }
}
