// The core modules `make mutation` mutates, each with the only test files that exercise it, so
// that one mutant costs seconds, not the whole suite.
//
// `mutate` entries:
//   "src/x.ts"             the whole file;
//   "src/x.ts#name"        the lines of the declaration called `name` (a function, a method, a
//                          private `#method`, an accessor or a `const name = ...`), found by
//                          parsing the file, so the entry survives edits above it;
//   "src/x.ts~some text"   the lines of the innermost statement whose source contains the text.
// `tests` entries are paths, or a `*` inside the last path segment (test/x/spool*.test.ts).
// A test file that exercises a module belongs in its list: a mutant it would kill otherwise
// counts as surviving. docs/testing.md says how to read the figures.
export const MODULES = {
  // The window of unacknowledged console lines: its bound, and the session that keeps it
  // (acks matched to lines in order, the reply bound, withdrawal when a line is refused).
  "console-window": {
    mutate: ["src/contract/window.ts", "src/console/session.ts"],
    // window-daemon.test.ts (a whole daemon, 9 s a run) is left out: the session's own tests cover it faster.
    tests: [
      "test/console/window.test.ts",
      "test/console/session*.test.ts",
      "test/console/acks.test.ts",
      "test/console/hostile.test.ts",
    ],
  },
  // Reading the VM's files back: whether the console can (readback.ts) and what the VM sync
  // does with the lines it reads (sync.ts's read-back path; its appends are elsewhere).
  "vm-readback": {
    mutate: ["src/console/readback.ts", "src/vm/sync.ts#readBack", "src/vm/sync.ts##readFiles", "src/vm/sync.ts##cat"],
    tests: [
      "test/vm/readback*.test.ts",
      "test/vm/pipelined-readback.test.ts",
      "test/vm/sync*.test.ts",
      "test/vm/apply-once.test.ts",
      "test/vm/churn.test.ts",
      "test/vm/talkback-hostile.test.ts",
    ],
  },
  "telemetry-spool": {
    mutate: ["src/telemetry/spool.ts"],
    tests: ["test/telemetry/spool*.test.ts", "test/telemetry/stall.test.ts", "test/telemetry/full-disk.test.ts"],
  },
  // The bearer token: its comparison and where it comes from (auth.ts), and the API's rule
  // that every request other than GET and HEAD carries it (app.ts); with a tokens file, every
  // route but /healthz needs one (the role-by-route table and the tenancy tests).
  auth: {
    mutate: ["src/api/auth.ts", "src/api/app.ts#requireAuth", "src/api/app.ts~requireAuth(c.req.raw)"],
    tests: ["test/api/auth*.test.ts", "test/api/app.test.ts", "test/api/roles.test.ts", "test/api/tenancy.test.ts"],
  },
  "cdi-apply": {
    mutate: ["src/cdi/apply.ts"],
    tests: ["test/cdi/apply*.test.ts"],
  },
  // The pre-job gate: every shard of the lease verified before its job runs, and the copy of
  // a shard a job reads as operand b checked against its seal.
  "vram-gate": {
    mutate: ["src/vram/shards.ts#gate", "src/vram/shards.ts#verify", "src/vram/shards.ts#readChecked"],
    tests: ["test/vram/shards*.test.ts", "test/vram/gate*.test.ts"],
  },
  // The offline check of an attestation (vram attest-verify): fields, key id, Ed25519 signature.
  "vram-attest-verify": {
    mutate: ["src/vram/attest-verify.ts", "src/util/canonical-json.ts"],
    tests: ["test/vram/attest-verify.test.ts", "test/vram/attest-key.test.ts", "test/util/canonical-json.test.ts"],
  },
  // The VRAM-only policy after the seal: the pointer rule, the start-up probe, the periodic check.
  "vram-policy": {
    mutate: [
      "src/vram/policy.ts",
      "src/util/repeat.ts",
      "src/vram/shards.ts#checkPolicy",
      "src/vram/shards.ts##checkPolicy",
      "src/vram/shards.ts##violation",
    ],
    // shards.test.ts holds the seal's own check (#checkPolicy): its record and its refusal;
    // sweep.test.ts the timer's other user, whose runs return promises (src/util/repeat.ts).
    tests: ["test/vram/policy.test.ts", "test/vram/shards.test.ts", "test/vram/sweep.test.ts"],
  },
  // The audit trail's lines on a worker thread: batches handed over in order, a reader waiting
  // for them, the bound on what waits, the exit's drain, and taking over from a worker that died.
  "audit-threaded": {
    mutate: ["src/audit/threaded.ts", "src/audit/trail-worker.ts"],
    tests: ["test/audit/threaded.test.ts", "test/audit/trail.test.ts"],
  },
  "job-validator": {
    mutate: ["src/job/descriptor.ts"],
    tests: ["test/job/descriptor*.test.ts"],
  },
  // Leases ending at their deadline: renewal, the one timer for the earliest deadline, expiry,
  // and deadlines restored from the journal.
  "lease-expiry": {
    mutate: [
      "src/lease/manager.ts#renew",
      "src/lease/manager.ts#restore",
      "src/lease/manager.ts##activate",
      "src/lease/manager.ts##end",
      "src/lease/manager.ts##arm",
      "src/lease/manager.ts##expire",
    ],
    tests: ["test/lease/manager*.test.ts", "test/lease/expiry*.test.ts", "test/lease/mig.test.ts"],
  },
  // The device plugin's pure core: allocations as leases and their release, the allocation
  // hint and device ids, health that recovers.
  "k8s-core": {
    mutate: ["src/k8s/allocations.ts", "src/k8s/devices.ts", "src/k8s/health.ts"],
    tests: ["test/k8s/allocations.test.ts", "test/k8s/devices.test.ts", "test/k8s/health.test.ts"],
  },
};

/** The score under which `make mutation` fails, per module. */
export const THRESHOLD = 85;
