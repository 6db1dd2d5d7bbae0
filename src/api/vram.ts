/**
 * Sealed VRAM shards (src/vram), one sub-app mounted at `/` (its paths span four resources),
 * calling the bridge's façade:
 *   POST   /v1/leases/:id/shards        seal (octet-stream body, or JSON naming a file under the model folder)
 *   GET    /v1/shards[?lease_id=]       list          GET /v1/shards/:id          one shard
 *   POST   /v1/shards/:id/verify        re-verify from VRAM ({"ok":true,…} or {"ok":false,"reason":…})
 *   DELETE /v1/shards/:id               free its VRAM GET /v1/shards/:id/attestation   signed statement
 *   GET    /v1/gpus/:id/vram            capacity      GET /v1/vram/plan?bytes=N[&lease_id=]   does N fit, where
 *   GET    /v1/vram/attestation-key     the public half of the key attestations are signed with
 * and the consumers' routes (vram-share.ts) and tensor-parallel sets' (vram-sets.ts).
 * A `VramError` a handler lets through becomes its HTTP status in `describeError` (errors.ts).
 */
import { realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import type { Context } from "hono";
import * as v from "valibot";
import { type SealOptions, type Shard, type ShardSource, unknownShard, VramError } from "../vram/shards.ts";
import { TREE_ALG } from "../vram/tree.ts";
import { fileSource } from "../vram/file-source.ts";
import { mediaType, readJson } from "./body.ts";
import { NO_QUERY, parseBody, parseQuery, queryText, queryValue } from "./schemas.ts";
import { ApiError, statusesOf, STORAGE_STATUS, VRAM_ERRORS } from "./errors.ts";
import type { ApiShardStore, BridgeFacade } from "./facade.ts";
import { param, type RouteDoc, type SubApp, subApp } from "./router.ts";
import { type Shards, shareability, shareRoutes } from "./vram-share.ts";
import { setRoutes } from "./vram-sets.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A shard as the API shows it: the contract's field names, never a pointer. */
export function shardView(s: Shard, backend: string) {
  return {
    shard_id: s.shard_id,
    lease_id: s.lease_id,
    gpu_id: s.gpu_id,
    gpu_device: s.gpu_device,
    vram_bytes: s.vram_bytes,
    digest: s.digest,
    tree_digest: s.tree_digest,
    tree_algorithm: TREE_ALG,
    sealed_at: iso(s.sealed_at),
    ...(s.set_id !== undefined && { set_id: s.set_id, shard_index: s.shard_index, total_shards: s.total_shards }),
    state: s.state,
    ...(s.failure !== null && { failure: s.failure }),
    verified_at: iso(s.verified_at),
    verifications: s.verifications,
    backend,
  };
}

const index = (field: string) => queryValue(field, "a non-negative integer", (x) => /^\d{1,6}$/.test(x));
/** The seal's options as query parameters (the body is the bytes). */
const SealQuery = v.strictObject({
  shard_id: queryText("shard_id", "The shard's id (default: one is made); sealing the same bytes under it again answers 200."),
  expected_digest: queryText("expected_digest", "The bytes' sha256 as hex: the seal is refused if they differ."),
  set_id: queryText("set_id", "The tensor-parallel set the shard joins (with shard_index and total_shards)."),
  shard_index: index("shard_index"),
  total_shards: index("total_shards"),
});
const int = (field: string) => v.pipe(v.number(`${field} must be an integer`), v.integer(`${field} must be an integer`));
/** The seal's options in a JSON body that names a file under the model folder. */
const FileSeal = v.strictObject({
  file: v.pipe(v.string("file must be a path relative to the model folder"), v.minLength(1, "file must not be empty")),
  shard_id: v.optional(v.string("shard_id must be a string")),
  expected_digest: v.optional(v.string("expected_digest must be a string")),
  set_id: v.optional(v.string("set_id must be a string")),
  shard_index: v.optional(int("shard_index")),
  total_shards: v.optional(int("total_shards")),
});
const ListQuery = v.strictObject({ lease_id: queryText("lease_id", "Only the shards of this lease.") });
const ReleaseQuery = v.strictObject({ reason: queryText("reason", "Why, as the shard's release reason (default: released).") });
const VerifyQuery = v.strictObject({
  mode: queryValue("mode", "full or sampled", (x) => x === "full" || x === "sampled"),
  k: queryValue("k", "an integer from 1 to 999999", (x) => /^[1-9]\d{0,5}$/.test(x)),
  path: queryValue("path", "gpu or cpu", (x) => x === "gpu" || x === "cpu"),
});
const PlanQuery = v.strictObject({
  bytes: v.pipe(
    v.optional(v.pipe(v.string(), v.description("How many bytes to place: a positive integer.")), ""),
    v.check((x) => /^[1-9]\d{0,15}$/.test(x), (issue) => `bytes must be a positive integer, got ${JSON.stringify(issue.input)}`),
  ),
  lease_id: queryText("lease_id", "Only on this live lease's GPU, within its room."),
});
const SHARD_FIELDS = "`{shard_id, lease_id, gpu_id, gpu_device, vram_bytes, digest, tree_digest, tree_algorithm, sealed_at, " +
  "set_id?, shard_index?, total_shards?, state, failure?, verified_at, verifications, backend}`.";
const WRITES = statusesOf(STORAGE_STATUS);

/** What each shard route takes and answers (router.ts). */
const SHARD_DOCS = {
  seal: {
    summary: "Seals bytes into the lease's VRAM: the body's bytes (with Content-Length), or a file under the model folder named in JSON",
    description: "With application/octet-stream the options are query parameters; with application/json they are fields of the " +
      "body beside `file`, and the query must be empty.",
    query: SealQuery,
    body: { required: true, content: { "application/octet-stream": null, "application/json": FileSeal } },
    ok: {
      status: 201,
      description: `The shard sealed: ${SHARD_FIELDS}`,
      headers: { Location: "/v1/shards/<id>" },
      also: { status: 200, description: `The shard was sealed already, with these bytes: ${SHARD_FIELDS}` },
    },
    errors: [400, 411, 422, ...VRAM_ERRORS, ...WRITES],
  },
  list: {
    summary: "The sealed shards, of every lease or of one",
    query: ListQuery,
    ok: { status: 200, description: `An array of shards, each ${SHARD_FIELDS}` },
    errors: VRAM_ERRORS,
  },
  get: {
    summary: "One shard",
    query: NO_QUERY,
    ok: { status: 200, description: SHARD_FIELDS },
    errors: VRAM_ERRORS,
  },
  release: {
    summary: "Frees a shard's VRAM",
    query: ReleaseQuery,
    ok: { status: 200, description: `The shard, released: ${SHARD_FIELDS}` },
    description: "A driver that refuses to free the memory is a 500 cuda_deallocation_failed: the shard is released all the " +
      "same (no longer served, handed out or counted), and the bytes stay allocated until the bridge's CUDA context ends.",
    errors: [...VRAM_ERRORS, ...WRITES],
  },
  verify: {
    summary: "Re-verifies a shard from VRAM, in full or by k sampled leaves, on the GPU or the CPU",
    query: VerifyQuery,
    ok: { status: 200, description: "`{ok: true, …}`, or `{ok: false, reason, …}` when the VRAM no longer holds what was sealed." },
    errors: [...VRAM_ERRORS, ...WRITES],
  },
  attestation: {
    summary: "A signed statement of what the shard holds and where",
    query: NO_QUERY,
    ok: {
      status: 200,
      description: '`{statement, signature: {algorithm: "Ed25519", key_id, over, encoding: "base64", value}}`: the ' +
        "statement (schema, shard, digests, GPU, state, policy, evidence, issued_at, signature_algorithm, key_id) signed " +
        "over its canonical JSON with the key of `GET /v1/vram/attestation-key`.",
    },
    errors: VRAM_ERRORS,
  },
  attestationKey: {
    summary: "The public key that checks this bridge's attestations (Ed25519), for verifiers that work offline",
    description: "Save the body to a file and give it to `gpu-bridge-host vram attest-verify FILE --key KEYFILE`, or use " +
      "`public_key_pem` with openssl (docs/vram-sharing.md). The key is made on the bridge's first start and kept in the state " +
      "folder; `key_id` (the first 16 hex digits of the SHA-256 of the raw key) is in every statement it signs.",
    query: NO_QUERY,
    ok: {
      status: 200,
      description: '`{algorithm: "Ed25519", key_id, public_key (the raw 32 bytes, base64url), public_key_pem (SPKI), ' +
        "jwk: {kty, crv, x, kid, alg}, created_at, ephemeral}`; `ephemeral` is true when no state folder keeps the key " +
        "(it ends with this run).",
    },
  },
  capacity: {
    summary: "A GPU's VRAM: the driver's figures and the bridge's side by side",
    query: NO_QUERY,
    ok: {
      status: 200,
      description: "`{gpu_id, gpu_device, backend, note?, total_bytes, used_bytes, available_bytes, driver: {total_bytes, free_bytes, " +
        "used_bytes}, bridge: {sealed_bytes, sealing_bytes, shards}}`.",
    },
    errors: VRAM_ERRORS,
  },
  plan: {
    summary: "Whether a number of bytes fits in VRAM now, and on which GPU",
    query: PlanQuery,
    ok: {
      status: 200,
      description: "`{vram_required, feasible, gpu_id, gpu_device, candidates: [{gpu_id, gpu_device, available_bytes, fits}]}`.",
    },
    errors: VRAM_ERRORS,
  },
} as const satisfies Record<string, RouteDoc>;

/**
 * The shard routes, to mount at `/`; none without the bridge's shards. Every change needs the
 * token (app.ts). Each route takes only the query parameters it names: any other is refused.
 */
export function vramRoutes(bridge: BridgeFacade): SubApp {
  const r = subApp();
  const vram = bridge.vram;
  if (vram === undefined) return r;
  const store = (): ApiShardStore => {
    if (vram.store === null) {
      throw new ApiError(503, "unavailable", `Cannot use sealed shards on this bridge: ${vram.unavailable ?? "no VRAM backend"}`);
    }
    return vram.store;
  };
  const x: Shards = { bridge, vram, store, view: (s) => ({ ...shardView(s, store().backend.kind), ...shareability(vram, s) }) };
  const shard = (c: Context): Shard => {
    parseQuery(NO_QUERY, c.req.raw);
    const found = store().get(param(c, "id"));
    if (found === undefined) {
      throw unknownShard(param(c, "id"));
    }
    return found;
  };

  r.on("POST", "/v1/leases/:id/shards", SHARD_DOCS.seal, (c) => seal(x, c));
  r.on("GET", "/v1/shards", SHARD_DOCS.list, (c) => c.json(store().list(parseQuery(ListQuery, c.req.raw).lease_id).map(x.view)));
  r.on("GET", "/v1/shards/:id", SHARD_DOCS.get, (c) => c.json(x.view(shard(c))));
  r.on("DELETE", "/v1/shards/:id", SHARD_DOCS.release, (c) => {
    const { reason } = parseQuery(ReleaseQuery, c.req.raw);
    const id = param(c, "id");
    const released = store().release(id, reason ?? "released");
    if (released.deallocation_error !== undefined) {
      // Released (no longer served or handed out), but the driver kept the memory: say so, not 200.
      throw new VramError(
        "cuda_deallocation_failed",
        `Shard ${id} is released, but the driver did not free its ${released.vram_bytes} bytes on CUDA device ` +
          `${released.gpu_device} (${released.deallocation_error}); they stay allocated until the bridge's CUDA context ends`,
        "id",
      );
    }
    return c.json({ ...x.view(released), state: "RELEASED" });
  });
  r.on("POST", "/v1/shards/:id/verify", SHARD_DOCS.verify, async (c) => {
    const q = parseQuery(VerifyQuery, c.req.raw);
    const mode = (q.mode ?? "full") as "full" | "sampled";
    return c.json(
      await store().verify(param(c, "id"), mode, q.k === undefined ? undefined : Number(q.k), q.path as "gpu" | "cpu" | undefined),
    );
  });
  r.on("GET", "/v1/shards/:id/attestation", SHARD_DOCS.attestation, (c) => c.json(vram.attest(shard(c))));
  r.on("GET", "/v1/gpus/:id/vram", SHARD_DOCS.capacity, (c) => {
    parseQuery(NO_QUERY, c.req.raw);
    return c.json(capacity(x, param(c, "id")));
  });
  r.on("GET", "/v1/vram/attestation-key", SHARD_DOCS.attestationKey, (c) => {
    parseQuery(NO_QUERY, c.req.raw);
    return c.json(vram.attestationKey());
  });
  r.on("GET", "/v1/vram/plan", SHARD_DOCS.plan, (c) => c.json(plan(x, parseQuery(PlanQuery, c.req.raw))));
  shareRoutes(r, x);
  setRoutes(r, x);
  return r;
}

/** POST /v1/leases/:id/shards: the bytes as the body (with Content-Length), or JSON naming a file. */
async function seal(x: Shards, c: Context): Promise<Response> {
  const leaseId = param(c, "id");
  const s = x.store();
  const type = mediaType(c.req.raw);
  let source: ShardSource;
  let opts: SealOptions;
  if (type === "application/octet-stream") {
    const declared = c.req.header("content-length");
    if (declared === undefined || !/^\d+$/.test(declared)) {
      throw new ApiError(
        411,
        "length_required",
        "Cannot seal a body of unknown length: send Content-Length (the VRAM is allocated before the bytes arrive)",
      );
    }
    opts = sealOptions(parseQuery(SealQuery, c.req.raw));
    source = { length: Number(declared), chunks: bodyChunks(c.req.raw) };
  } else if (type === "application/json") {
    parseQuery(NO_QUERY, c.req.raw);
    const { file, ...rest } = parseBody(FileSeal, await readJson(c.req.raw));
    opts = rest;
    source = await fileUnder(x.vram.modelDir, file);
  } else {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type must be application/octet-stream (the bytes) or application/json (a file under the model folder), got ${
        JSON.stringify(type || "(none)")
      }`,
    );
  }
  const { shard, created } = await s.seal(leaseId, source, opts);
  return c.json(x.view(shard), created ? 201 : 200, { Location: `/v1/shards/${shard.shard_id}` });
}

/** The query's seal options, numbers as numbers (their ranges are the store's to check). */
function sealOptions(q: v.InferOutput<typeof SealQuery>): SealOptions {
  return {
    ...(q.shard_id !== undefined && { shard_id: q.shard_id }),
    ...(q.expected_digest !== undefined && { expected_digest: q.expected_digest }),
    ...(q.set_id !== undefined && { set_id: q.set_id }),
    ...(q.shard_index !== undefined && { shard_index: Number(q.shard_index) }),
    ...(q.total_shards !== undefined && { total_shards: Number(q.total_shards) }),
  };
}

/** GET /v1/vram/plan: whether `bytes` fit, on which GPU (the lease's only, when one is named). */
function plan(x: Shards, q: v.InferOutput<typeof PlanQuery>) {
  const bytes = Number(q.bytes);
  const leaseId = q.lease_id;
  const lease = leaseId === undefined ? undefined : x.bridge.leases.get(leaseId);
  if (leaseId !== undefined && lease?.state !== "ACTIVE") {
    throw new VramError("not_found", `Unknown or ended lease ${JSON.stringify(leaseId)}`, "lease_id");
  }
  const candidates = x.bridge.gpus()
    .filter((g) => lease === undefined || g.id === lease.gpu_id)
    .map((g) => {
      const cap = capacity(x, g.id);
      const available = lease === undefined ? cap.available_bytes : Math.min(cap.available_bytes, x.store().leaseRoom(lease));
      return { gpu_id: g.id, gpu_device: cap.gpu_device, available_bytes: available, fits: bytes <= available };
    })
    .sort((a, b) => b.available_bytes - a.available_bytes);
  const best = candidates.find((c) => c.fits);
  return {
    vram_required: bytes,
    feasible: best !== undefined,
    gpu_id: best?.gpu_id ?? null,
    gpu_device: best?.gpu_device ?? null,
    candidates,
  };
}

/** GET /v1/gpus/:id/vram: the driver's figures and the bridge's side by side. */
function capacity(x: Shards, gpuId: string) {
  const s = x.store();
  if (!x.bridge.gpus().some((g) => g.id === gpuId)) throw new VramError("not_found", `Unknown GPU ${JSON.stringify(gpuId)}`, "id");
  const ordinal = x.vram.ordinalOf(gpuId);
  if (ordinal === undefined) {
    throw new VramError("unavailable", `Cannot read VRAM of ${gpuId}: the CUDA driver does not know this GPU`, "id");
  }
  let driver: { free: number; total: number };
  try {
    driver = s.backend.memInfo(ordinal);
  } catch (error) {
    throw new VramError("cuda", `Cannot read VRAM of ${gpuId}: ${(error as Error).message}`, undefined, undefined, { cause: error });
  }
  const own = s.usedBytes(ordinal);
  return {
    gpu_id: gpuId,
    gpu_device: ordinal,
    backend: s.backend.kind,
    ...(s.backend.kind === "host-memory" && { note: s.backend.note }),
    total_bytes: driver.total,
    used_bytes: own.sealed,
    available_bytes: driver.free,
    driver: { total_bytes: driver.total, free_bytes: driver.free, used_bytes: driver.total - driver.free },
    bridge: { sealed_bytes: own.sealed, sealing_bytes: own.reserved, shards: own.shards },
  };
}

async function* bodyChunks(req: Request): AsyncIterable<Uint8Array> {
  if (req.body === null) return;
  const reader = req.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * Where `file` really is inside the model folder `dir`: refused when it leads out of it; a path
 * that is not there is not found; one that cannot be resolved (a symlink loop, a folder that
 * cannot be searched) says so, with the error as cause.
 */
async function resolveModelFile(dir: string, file: string): Promise<string> {
  if (file.includes("\0") || isAbsolute(file) || file.split(/[\\/]/).includes("..")) {
    throw new VramError("invalid", `file must be a path inside the model folder, without '..', got ${JSON.stringify(file)}`, "file");
  }
  let root: string;
  let real: string;
  try {
    root = await realpath(dir);
  } catch (error) {
    const missing = (error as { code?: unknown }).code === "ENOENT";
    throw new VramError(
      "unavailable",
      missing
        ? `Cannot seal from a file: the model folder ${dir} does not exist (set GPU_BRIDGE_MODEL_DIR)`
        : `Cannot seal from a file: the model folder ${dir} cannot be resolved: ${(error as Error).message}`,
      "file",
      {},
      { cause: error },
    );
  }
  try {
    real = await realpath(resolve(root, file));
  } catch (error) {
    const missing = (error as { code?: unknown }).code === "ENOENT";
    throw new VramError(
      missing ? "not_found" : "invalid",
      missing
        ? `Cannot seal ${JSON.stringify(file)}: no such file in the model folder ${root}`
        : `Cannot seal ${JSON.stringify(file)}: it cannot be resolved in the model folder ${root}: ${(error as Error).message}`,
      "file",
      {},
      { cause: error },
    );
  }
  const rel = relative(root, real);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw new VramError("invalid", `Cannot seal ${JSON.stringify(file)}: it leads outside the model folder`, "file");
  }
  return real;
}

/** A file under `dir`, read in CHUNK_BYTES pieces (never whole); symlinks out of `dir` are refused. */
async function fileUnder(dir: string, file: string): Promise<ShardSource> {
  return await fileSource(await resolveModelFile(dir, file), file);
}
