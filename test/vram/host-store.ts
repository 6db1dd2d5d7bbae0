/** A shard store on host memory for one lease, with a throwaway audit trail (the unit tests' usual store). */
import type { Lease } from "../../src/lease/types.ts";
import { VramAudit } from "../../src/vram/audit.ts";
import { HostMemoryVram } from "../../src/vram/host-backend.ts";
import { deriveKey } from "../../src/vram/seal-key.ts";
import { ShardStore, type ShardStoreOptions } from "../../src/vram/shards.ts";
import type { TreePool } from "../../src/vram/tree-pool.ts";
import { memoryLogger } from "../helpers.ts";

export function hostStore(pool: TreePool, lease: Lease, extra: Partial<ShardStoreOptions> = {}): ShardStore {
  return new ShardStore({
    backend: new HostMemoryVram(() => 1 << 30, pool),
    audit: new VramAudit(null, memoryLogger().log),
    key: deriveKey("k", "k"),
    lease: () => lease,
    ordinalOf: () => 0,
    ...extra,
  });
}
