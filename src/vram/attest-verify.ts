/**
 * Checks a saved attestation offline, as a third party would: the statement's fields, the key
 * it names, and the Ed25519 signature over its canonical JSON, against a public key given as a
 * file (the body of `GET /v1/vram/attestation-key` or any one of its forms: PEM, JWK, raw). Nothing here
 * asks the bridge anything. `gpu-bridge-host vram attest-verify` prints what it returns.
 */
import { createPublicKey, type KeyObject, verify } from "node:crypto";
import * as v from "valibot";
import { ATTEST_ALG, keyIdOf } from "./attest-key.ts";
import { canonicalJson } from "../util/canonical-json.ts";
import { SET_DIGEST_ALG, setDigest } from "./sets.ts";

/** The shard attestation's schema (attest.ts writes it). */
const SHARD_SCHEMA = "gpu-bridge-vram-attestation/v1";
/** A tensor-parallel set's attestation (attest.ts `setAttestation`). */
const SET_SCHEMA = "gpu-bridge-vram-set-attestation/v1";

const text = (f: string) => v.string(`${f} must be a string`);
const hex64 = (f: string) => v.pipe(text(f), v.regex(/^[0-9a-f]{64}$/, `${f} must be 64 lowercase hex digits`));
const count = (f: string) =>
  v.pipe(v.number(`${f} must be an integer`), v.safeInteger(`${f} must be an integer`), v.minValue(0, `${f} must be >= 0`));
const time = (f: string) => v.pipe(text(f), v.isoTimestamp(`${f} must be an ISO 8601 time`));

/** What every signed statement carries, whatever its schema. */
const Envelope = v.looseObject({
  statement: v.looseObject({
    schema: text("statement.schema"),
    signature_algorithm: text("statement.signature_algorithm"),
    key_id: v.pipe(text("statement.key_id"), v.regex(/^[0-9a-f]{16}$/, "statement.key_id must be 16 lowercase hex digits")),
    issued_at: time("statement.issued_at"),
  }),
  signature: v.looseObject({
    algorithm: text("signature.algorithm"),
    key_id: text("signature.key_id"),
    value: v.pipe(text("signature.value"), v.base64("signature.value must be base64")),
  }),
});

/** A shard attestation's statement (attest.ts). */
const ShardStatement = v.looseObject({
  shard_id: text("statement.shard_id"),
  lease_id: text("statement.lease_id"),
  gpu_id: text("statement.gpu_id"),
  gpu_device: count("statement.gpu_device"),
  vram_bytes: count("statement.vram_bytes"),
  digest: hex64("statement.digest"),
  tree_digest: hex64("statement.tree_digest"),
  tree_algorithm: text("statement.tree_algorithm"),
  sealed_at: time("statement.sealed_at"),
  state: v.picklist(["SEALED", "FAILED"], "statement.state must be SEALED or FAILED"),
  resident: v.boolean("statement.resident must be true or false"),
  last_verified_at: v.nullable(time("statement.last_verified_at")),
  backend: text("statement.backend"),
  policy: v.looseObject({
    name: text("statement.policy.name"),
    status: v.picklist(["enforced", "not_applicable"], "statement.policy.status must be enforced or not_applicable"),
    reason: text("statement.policy.reason"),
  }),
});
type ShardStatement = v.InferOutput<typeof ShardStatement>;

/** A set attestation's statement: the set digest and every member as its own attestation names it. */
const SetStatement = v.looseObject({
  set_id: text("statement.set_id"),
  worker_id: text("statement.worker_id"),
  total_shards: v.pipe(count("statement.total_shards"), v.minValue(1, "statement.total_shards must be >= 1")),
  set_digest: hex64("statement.set_digest"),
  set_digest_algorithm: v.literal(SET_DIGEST_ALG, `statement.set_digest_algorithm must be ${SET_DIGEST_ALG}`),
  state: text("statement.state"),
  resident: v.boolean("statement.resident must be true or false"),
  members: v.array(
    v.looseObject({
      shard_index: count("statement.members[].shard_index"),
      shard_id: text("statement.members[].shard_id"),
      lease_id: text("statement.members[].lease_id"),
      gpu_id: text("statement.members[].gpu_id"),
      gpu_device: count("statement.members[].gpu_device"),
      vram_bytes: count("statement.members[].vram_bytes"),
      digest: hex64("statement.members[].digest"),
      state: text("statement.members[].state"),
    }),
    "statement.members must be an array",
  ),
});
type SetStatement = v.InferOutput<typeof SetStatement>;

/**
 * Why a set statement's members do not bind to its set digest (the binding a third party checks
 * itself: every index once, and the digest recomputed from them), or null.
 */
function setBindingProblem(s: SetStatement): string | null {
  const indexes = s.members.map((m) => m.shard_index).sort((a, b) => a - b);
  if (indexes.length !== s.total_shards || indexes.some((i, n) => i !== n)) {
    return `set members: indexes ${indexes.join(",") || "none"} are not each of 0..${s.total_shards - 1} once`;
  }
  const actual = setDigest(s.set_id, s.total_shards, s.members);
  return actual === s.set_digest ? null : `set digest mismatch: the members give ${actual}, the statement says ${s.set_digest}`;
}

/** What each schema must hold beyond the envelope, and how a person reads it. */
const SCHEMAS: Readonly<
  Record<string, {
    readonly fields: v.GenericSchema;
    readonly describe: (s: never) => string[];
    /** Why the fields contradict each other, or null. */
    readonly problem?: (s: never) => string | null;
  }>
> = {
  [SHARD_SCHEMA]: {
    fields: ShardStatement,
    describe: (s: ShardStatement) => [
      `shard    ${s.shard_id} (lease ${s.lease_id}, ${s.vram_bytes} bytes)`,
      `digest   sha256 ${s.digest}`,
      `tree     ${s.tree_algorithm} ${s.tree_digest}`,
      `gpu      ${s.gpu_id} (CUDA device ${s.gpu_device}), backend ${s.backend}`,
      `state    ${s.state}${s.resident ? ", resident" : ", not resident"}; sealed ${s.sealed_at}; last verified ${
        s.last_verified_at ?? "never since the seal"
      }`,
      `policy   ${s.policy.name}: ${s.policy.status} (${s.policy.reason})`,
    ],
  },
  [SET_SCHEMA]: {
    fields: SetStatement,
    problem: setBindingProblem,
    describe: (s: SetStatement) => [
      `set      ${s.set_id} of ${s.total_shards} shards (worker ${s.worker_id}), ${s.state}${s.resident ? ", resident" : ", not resident"}`,
      `digest   ${s.set_digest_algorithm} ${s.set_digest} (recomputed from the members)`,
      ...[...s.members].sort((a, b) => a.shard_index - b.shard_index).map((m) =>
        `member ${m.shard_index} ${m.shard_id} on ${m.gpu_id} (CUDA device ${m.gpu_device}), ${m.vram_bytes} bytes, sha256 ${m.digest}, ${m.state}`
      ),
    ],
  },
};

/** The verdict: what was attested, or why the file does not prove it. */
export type AttestVerdict =
  | { readonly ok: true; readonly key_id: string; readonly schema: string; readonly lines: readonly string[]; readonly statement: unknown }
  | { readonly ok: false; readonly reason: string };

/** A valibot issue as "statement.digest is missing" or its message. */
function issueText(issue: v.BaseIssue<unknown>, prefix = ""): string {
  const path = v.getDotPath(issue);
  if (issue.received === "undefined" && path !== null) return `${prefix}${path} is missing`;
  return issue.message;
}

/**
 * The public key in `keyText`: the JSON of `GET /v1/vram/attestation-key`, a JWK, or a PEM
 * public key. Throws naming what is wrong (a private key is refused: give the public half).
 */
export function parsePublicKey(keyText: string, where: string): KeyObject {
  const trimmed = keyText.trim();
  if (trimmed.includes("PRIVATE KEY-----")) {
    throw new Error(`Cannot use ${where}: it holds a private key; give the public half (GET /v1/vram/attestation-key, or public_key_pem)`);
  }
  let key: KeyObject;
  try {
    if (trimmed.startsWith("-----BEGIN")) key = createPublicKey({ key: trimmed, format: "pem" });
    else {
      const body = JSON.parse(trimmed) as Record<string, unknown>;
      if (typeof body.public_key_pem === "string") key = createPublicKey({ key: body.public_key_pem, format: "pem" });
      else if (body.jwk !== null && typeof body.jwk === "object") key = createPublicKey({ key: body.jwk as never, format: "jwk" });
      else if (body.kty === "OKP") key = createPublicKey({ key: body as never, format: "jwk" });
      else if (typeof body.public_key === "string") {
        key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: body.public_key }, format: "jwk" });
      } else throw new Error("no public_key_pem, jwk, public_key, or JWK fields (kty, crv, x)");
      if (typeof body.key_id === "string" && body.key_id !== keyIdOf(key)) {
        throw new Error(`its key_id ${body.key_id} is not the fingerprint of its key (${keyIdOf(key)})`);
      }
    }
  } catch (error) {
    throw new Error(
      `Cannot use ${where} as a public key: ${
        (error as Error).message
      } (give the body of GET /v1/vram/attestation-key, a JWK, or a PEM public key)`,
      { cause: error },
    );
  }
  if (key.asymmetricKeyType !== "ed25519") throw new Error(`Cannot use ${where}: it holds an ${key.asymmetricKeyType} key, not Ed25519`);
  return key;
}

/**
 * Checks the attestation in `attestText` against `key`; `expectKeyId` pins the key id the
 * verifier expects. The order decides the reason given: the statement's form, then the key,
 * then the signature.
 */
export function verifyAttestation(attestText: string, key: KeyObject, expectKeyId?: string): AttestVerdict {
  let raw: unknown;
  try {
    raw = JSON.parse(attestText);
  } catch (error) {
    return { ok: false, reason: `malformed attestation: not JSON (${(error as Error).message})` };
  }
  // The share socket's `open` answer carries the attestation in a field of its own.
  if (raw !== null && typeof raw === "object" && "attestation" in raw && !("statement" in raw)) {
    raw = (raw as { attestation: unknown }).attestation;
  }
  const env = v.safeParse(Envelope, raw);
  if (!env.success) return { ok: false, reason: `malformed attestation: ${issueText(env.issues[0])}` };
  const { statement, signature } = env.output;
  const schema = SCHEMAS[statement.schema];
  if (schema === undefined) {
    return {
      ok: false,
      reason: `malformed statement: statement.schema is ${JSON.stringify(statement.schema)}, not one this version knows (${
        Object.keys(SCHEMAS).join(", ")
      })`,
    };
  }
  const fields = v.safeParse(schema.fields, statement);
  if (!fields.success) return { ok: false, reason: `malformed statement: ${issueText(fields.issues[0], "statement.")}` };
  if (statement.signature_algorithm !== ATTEST_ALG || signature.algorithm !== ATTEST_ALG) {
    const alg = statement.signature_algorithm !== ATTEST_ALG ? statement.signature_algorithm : signature.algorithm;
    return {
      ok: false,
      reason: `unsupported signature algorithm ${JSON.stringify(alg)}: only ${ATTEST_ALG} can be checked by a third party`,
    };
  }
  if (signature.key_id !== statement.key_id) {
    return { ok: false, reason: `key id mismatch: the signature names key ${signature.key_id}, the statement key ${statement.key_id}` };
  }
  const given = keyIdOf(key);
  if (expectKeyId !== undefined && expectKeyId !== statement.key_id) {
    return { ok: false, reason: `key id mismatch: the statement was signed by key ${statement.key_id}, not ${expectKeyId} (--key-id)` };
  }
  if (given !== statement.key_id) {
    return { ok: false, reason: `key id mismatch: the statement was signed by key ${statement.key_id}; the key given is ${given}` };
  }
  const sig = Buffer.from(signature.value, "base64");
  const good = sig.length === 64 && verify(null, Buffer.from(canonicalJson(statement), "utf8"), key, sig);
  if (!good) {
    return {
      ok: false,
      reason: `bad signature: key ${given} did not sign this statement (it was changed after signing, or the signature was)`,
    };
  }
  const problem = schema.problem?.(fields.output as never) ?? null;
  if (problem !== null) return { ok: false, reason: `inconsistent statement: ${problem}` };
  return {
    ok: true,
    key_id: given,
    schema: statement.schema,
    lines: [...schema.describe(fields.output as never), `issued   ${statement.issued_at}`],
    statement,
  };
}
