/** `serve --cdi-dir DIR`: the CDI keeper on the bridge's backend and leases (`GET /v1/cdi` is in src/api/cdi.ts). */
import { generate } from "../cdi/generate-command.ts";
import type { CdiBackend } from "../cdi/host.ts";
import { CdiKeeper, type CdiKeeperOptions } from "../cdi/keeper.ts";
import type { LeaseShareMount } from "../cdi/share-mount.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { Lease, LeaseEvent } from "../lease/types.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";

export interface BridgeCdiOptions {
  readonly cdiDir: string;
  /** Where device nodes and driver files are read; undefined: DEFAULTS.cdiRoot. */
  readonly cdiRoot?: string | undefined;
  readonly backend: CdiBackend;
  readonly sysRoot: string;
  /** More edits for each lease's device (`--mps`: the MPS client's). */
  readonly leaseEdits?: CdiKeeperOptions["leaseEdits"];
  /** Told the host's MIG devices (`MIG-<uuid>` to the bridge's GPU id) each time the host is described. */
  readonly onMigs?: (migs: ReadonlyMap<string, string>) => void;
}

/** Starts the keeper: the spec is written (or a stale one removed) before this resolves. */
export async function startBridgeCdi(
  o: BridgeCdiOptions,
  leases: { live(): readonly Lease[]; on(listener: (e: LeaseEvent) => void): () => void },
  log: Logger,
  clock: Clock,
  refreshMs?: number,
  leaseShare?: (leaseId: string) => LeaseShareMount | null,
): Promise<CdiKeeper> {
  const root = o.cdiRoot ?? DEFAULTS.cdiRoot;
  // Without --cdi-root, the mock backend describes its GPUs' own device nodes (src/cdi/mock-nodes.ts).
  const devRoot = o.cdiRoot;
  const kind = DEFAULTS.cdiBridgeKind;
  const keeper = new CdiKeeper({
    dir: o.cdiDir,
    kind,
    leases,
    log,
    clock,
    ...(refreshMs !== undefined && { refreshMs }),
    ...(leaseShare !== undefined && { leaseShare }),
    ...(o.leaseEdits !== undefined && { leaseEdits: o.leaseEdits }),
    generate: async () => {
      const g = await generate(
        { backend: o.backend, sysRoot: o.sysRoot, devRoot, driverRoot: root, csvDir: undefined, hookPath: undefined, cdiKind: kind },
        kind,
        process.env,
        log,
      );
      o.onMigs?.(new Map((g.migs ?? []).map((m) => [m.uuid, `GPU-${m.gpu}`])));
      return g;
    },
  });
  await keeper.start();
  return keeper;
}
