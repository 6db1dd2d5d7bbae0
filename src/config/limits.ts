/**
 * The host's own limits: this bridge's policy, not the VM's contract (src/contract/limits.ts
 * holds those). A lease request past one is well-formed and refused as a grant would be.
 */

/** The most streams one GPU may lease (`--max-streams-per-gpu`'s ceiling), so the most one lease may ask for. */
export const MAX_STREAMS = 1024;

/** The longest lease, in seconds (a week). */
export const MAX_TTL_S = 7 * 24 * 3600;

/** The largest `--max-lease-mem-mb` and `--lease-mem-mb` (2^31-1 MiB: past any GPU made). */
export const MAX_LEASE_MEM_MB = 2 ** 31 - 1;

/** The most bytes of a JSON or telemetry request body the API reads; a bigger one is a 413. */
export const BODY_LIMIT = 1024 * 1024;

/** The most shards one tensor-parallel set may have (a seal's `total_shards`). */
export const MAX_TOTAL_SHARDS = 65536;
