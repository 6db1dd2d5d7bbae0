/**
 * Every kind of change the bridge records, in one table: its dotted name, what it means, and
 * whether `GET /v1/events` streams it (some are kept for the audit trail only, such as each API
 * request). A producer can append only a type named here, and a stream filter naming no type
 * here is refused, so docs/events.md, the stream and the producers cannot disagree.
 */

/** One kind of change. */
export interface ChangeKind {
  readonly type: string;
  /** One line: when it is recorded. */
  readonly when: string;
  /** Whether the event stream carries it (false: audit trail and metrics only). */
  readonly streamed: boolean;
}

const kinds: readonly ChangeKind[] = [
  { type: "lease.granted", when: "a lease is granted (API, VM request, restore excluded)", streamed: true },
  { type: "lease.renewed", when: "a lease's TTL is renewed on its own terms", streamed: true },
  { type: "lease.amended", when: "a lease's terms change (memory, streams, TTL, priority), admitted like a grant", streamed: true },
  { type: "lease.priority", when: "a lease's priority changes (a PRIORITY control line)", streamed: true },
  { type: "lease.released", when: "a lease ends for any reason but its TTL (the reason is in data)", streamed: true },
  { type: "lease.expired", when: "a lease ends because its TTL ran out", streamed: true },
  { type: "job.state", when: "a job moves to QUEUED, RUNNING, OK or ERR (detail and message in data)", streamed: true },
  { type: "shard.allocated", when: "VRAM is allocated for a shard", streamed: true },
  { type: "shard.allocation_failed", when: "VRAM for a shard could not be allocated", streamed: true },
  { type: "shard.sealed", when: "a shard's bytes are sealed (digest and seal in data)", streamed: true },
  { type: "shard.verified", when: "a sealed shard is verified unchanged", streamed: true },
  { type: "shard.verify_failed", when: "a sealed shard no longer matches its seal (critical)", streamed: true },
  { type: "shard.deallocated", when: "a shard's VRAM is freed (deleted, or its lease ended)", streamed: true },
  { type: "shard.shared", when: "a sealed shard is handed read-only to a client of its lease's socket", streamed: true },
  { type: "shard.share_revoked", when: "a shard's hand-outs end (released, deleted, its lease ended, or it failed)", streamed: true },
  {
    type: "shard_set.ready",
    when: "the last missing member of a tensor-parallel set is sealed (set digest and members in data)",
    streamed: true,
  },
  { type: "shard_set.failed", when: "a member of a tensor-parallel set fails verification (critical)", streamed: true },
  {
    type: "shard_set.incomplete",
    when: "a member of a tensor-parallel set is released (deleted, or its lease ended): the missing indexes in data",
    streamed: true,
  },
  { type: "vram.policy_violation", when: "the VRAM-only policy is broken (critical)", streamed: true },
  { type: "model.activated", when: "the registry's active model changes (API, or the active file edited)", streamed: true },
  { type: "model.approval", when: "a model's approval changes (PUT /v1/models/{id}/approval)", streamed: true },
  { type: "model.activation_refused", when: "a hand edit of the active file named a model that may not be active", streamed: true },
  { type: "mps.started", when: "the bridge started a GPU's MPS control daemon (serve --mps)", streamed: true },
  { type: "mps.adopted", when: "a GPU's MPS control daemon already running was adopted", streamed: true },
  { type: "mps.failed", when: "a GPU could not get an MPS control daemon (the reason in data)", streamed: true },
  { type: "mps.stopped", when: "an MPS control daemon the bridge started was stopped", streamed: true },
  {
    type: "gpu.health",
    when: "a GPU leaves or returns to the inventory, or the device plugin finds it unhealthy or recovered (healthy, reason)",
    streamed: true,
  },
  { type: "console.state", when: "the console connection changes state (connecting, connected, backoff, stopped)", streamed: true },
  {
    type: "api.request",
    when: "an API request that could change something is answered (principal, route, request id, status)",
    streamed: false,
  },
  {
    type: "tokens.reloaded",
    when: "the tokens file is read again on SIGHUP (outcome ok, or refused and the old one kept)",
    streamed: true,
  },
];

/** The kinds by type. */
export const CHANGE_KINDS: ReadonlyMap<string, ChangeKind> = new Map(kinds.map((k) => [k.type, k]));

/** A dotted lower-case name: `lease.granted`, `shard.verify_failed`. */
export const CHANGE_TYPE = /^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$/;

/**
 * Adds kinds to the table (a capability that records changes of its own registers them when its
 * module loads). A type already there, or not dotted lower case, is a programming error.
 */
export function registerChangeKinds(more: readonly ChangeKind[]): void {
  const table = CHANGE_KINDS as Map<string, ChangeKind>;
  for (const k of more) {
    if (!CHANGE_TYPE.test(k.type)) throw new Error(`change type ${JSON.stringify(k.type)} is not dotted lower case`);
    if (table.has(k.type)) throw new Error(`change type ${k.type} is registered twice`);
    table.set(k.type, k);
  }
}
