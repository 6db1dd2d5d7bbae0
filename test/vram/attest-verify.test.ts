/**
 * `gpu-bridge-host vram attest-verify FILE --key KEYFILE` on the command line: a saved shard
 * attestation checks offline against the bridge's public key (exit 0, what was attested); a
 * one-character edit, another bridge's key, a missing field, a pinned key id that differs are
 * exit 1 with the reason; usage errors exit 2.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main } from "../../src/main.ts";
import { attestation } from "../../src/vram/attest.ts";
import { loadAttestSigner } from "../../src/vram/attest-key.ts";
import { setDigest } from "../../src/vram/sets.ts";
import { TreePool } from "../../src/vram/tree-pool.ts";
import { activeLease, memoryStdio, REPO, tempFolder } from "../helpers.ts";
import { hostStore } from "./host-store.ts";
import { pattern, source } from "./vectors.ts";

const pool = TreePool.create(0);
afterAll(() => pool.close());

const dir = tempFolder("attest-verify-");
const signer = loadAttestSigner(join(dir, "state", "vram-attest.key"), Date.UTC(2026, 11, 1));
const other = loadAttestSigner(join(dir, "other", "vram-attest.key"), Date.UTC(2026, 11, 1));
const store = hostStore(pool, activeLease({ id: "L1", gpu_id: "GPU-0", worker_id: "w" }));
const { shard } = await store.seal("L1", source(pattern(70_000)), { shard_id: "llama-0" });
const att = attestation(shard, store.backend, signer, Date.UTC(2026, 11, 6, 1, 2, 3));
const file = (name: string, body: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, typeof body === "string" ? body : JSON.stringify(body, null, 2));
  return path;
};
const good = file("att.json", att);
const key = file("key.json", signer.view());
const otherKey = file("other.json", other.view());
const pem = file("key.pem", signer.view().public_key_pem);

async function verify(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const s = memoryStdio(JSON.stringify(att));
  const code = await main(["vram", "attest-verify", ...args], {}, s.io);
  return { code, out: s.out.join(""), err: s.err.join("") };
}

describe("vram attest-verify", () => {
  test("a good file: exit 0 and what was attested", async () => {
    const r = await verify(good, "--key", key);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines[0]).toBe(`VALID attestation (gpu-bridge-vram-attestation/v1) signed by key ${signer.keyId} (Ed25519)`);
    expect(lines).toContain(`  shard    llama-0 (lease L1, 70000 bytes)`);
    expect(lines).toContain(`  digest   sha256 ${shard.digest}`);
    expect(lines).toContain(`  tree     sha256-tree-64KiB ${shard.tree_digest}`);
    expect(lines).toContain(`  gpu      GPU-0 (CUDA device 0), backend host-memory`);
    expect(lines).toContain(`  issued   2026-12-06T01:02:03.000Z`);
    expect(lines.find((l) => l.startsWith("  policy   "))).toStartWith("  policy   vram-only: not_applicable (");
    // The same with the PEM, from standard input, and as JSON.
    expect((await verify(good, "--key", pem)).code).toBe(0);
    expect((await verify("-", "--key", key, "--key-id", signer.keyId)).code).toBe(0);
    const j = await verify(good, "--key", key, "--json");
    expect(JSON.parse(j.out)).toEqual({ ok: true, key_id: signer.keyId, statement: att.statement });
  });

  test("a one-character edit of the statement: bad signature, exit 1", async () => {
    const text = JSON.stringify(att);
    const edited = text.replace(`"vram_bytes":70000`, `"vram_bytes":70001`);
    expect(edited).not.toBe(text);
    const r = await verify(file("edited.json", edited), "--key", key);
    expect(r.code).toBe(1);
    expect(r.out).toBe(
      `INVALID: bad signature: key ${signer.keyId} did not sign this statement (it was changed after signing, or the signature was)\n`,
    );
    const sig = att.signature.value;
    const flipped = { ...att, signature: { ...att.signature, value: (sig[0] === "A" ? "B" : "A") + sig.slice(1) } };
    expect((await verify(file("sig.json", flipped), "--key", key)).out).toStartWith("INVALID: bad signature");
  });

  test("another bridge's key: key id mismatch, exit 1; so is a pinned key id the statement does not name", async () => {
    const r = await verify(good, "--key", otherKey);
    expect(r.code).toBe(1);
    expect(r.out).toBe(`INVALID: key id mismatch: the statement was signed by key ${signer.keyId}; the key given is ${other.keyId}\n`);
    const pinned = await verify(good, "--key", key, "--key-id", other.keyId);
    expect(pinned.code).toBe(1);
    expect(pinned.out).toBe(`INVALID: key id mismatch: the statement was signed by key ${signer.keyId}, not ${other.keyId} (--key-id)\n`);
    // A statement re-signed by another key but still naming this one.
    const forged = { statement: att.statement, signature: { ...att.signature, value: other.sign(att.statement).signature.value } };
    expect((await verify(file("forged.json", forged), "--key", key)).out).toStartWith("INVALID: bad signature");
  });

  test("a missing or malformed field: the field is named, exit 1", async () => {
    const { digest: _digest, ...noDigest } = att.statement;
    const r = await verify(file("nodigest.json", { ...att, statement: noDigest }), "--key", key);
    expect(r.code).toBe(1);
    expect(r.out).toBe("INVALID: malformed statement: statement.digest is missing\n");
    const cases: [unknown, string][] = [
      [{ ...att, statement: { ...att.statement, gpu_device: "0" } }, "malformed statement: statement.gpu_device must be an integer"],
      [{ ...att, statement: { ...att.statement, key_id: undefined } }, "malformed attestation: statement.key_id is missing"],
      [{ statement: att.statement }, "malformed attestation: signature is missing"],
      [
        { ...att, statement: { ...att.statement, policy: { ...att.statement.policy, status: "maybe" } } },
        "statement.policy.status must be enforced or not_applicable",
      ],
      [{ ...att, statement: { ...att.statement, schema: "other/v1" } }, 'statement.schema is "other/v1", not one this version knows'],
      [{ ...att, signature: { ...att.signature, algorithm: "HMAC-SHA256" } }, 'unsupported signature algorithm "HMAC-SHA256"'],
      ["{not json", "malformed attestation: not JSON"],
    ];
    for (const [i, [body, reason]] of cases.entries()) {
      const c = await verify(file(`case-${i}.json`, body), "--key", key);
      expect([c.code, c.out]).toEqual([1, expect.stringContaining(reason)]);
    }
  });

  test("keys that cannot be used, and usage errors", async () => {
    const priv = await verify(good, "--key", join(dir, "state", "vram-attest.key"));
    expect(priv.code).toBe(1);
    expect(priv.err).toContain("it holds a private key; give the public half");
    const lying = await verify(good, "--key", file("lying.json", { ...signer.view(), key_id: other.keyId }));
    expect(lying.err).toContain(`its key_id ${other.keyId} is not the fingerprint of its key (${signer.keyId})`);
    expect((await verify(good, "--key", join(dir, "none.json"))).err).toContain(`Cannot read the key ${join(dir, "none.json")}`);
    const noKey = await verify(good);
    expect(noKey.code).toBe(2);
    expect(noKey.err).toContain("vram attest-verify needs --key KEYFILE");
    expect((await verify(good, "--key", key, "--key-id", "XYZ")).code).toBe(2);
    const help = memoryStdio();
    expect(await main(["vram", "--help"], {}, help.io)).toBe(0);
    expect(help.out.join("")).toContain("gpu-bridge-host vram attest-verify FILE --key KEYFILE [--key-id ID] [--json]");
  });
});

/** The statement without what sign() adds, changed by `over`, signed again by `by`. */
function resigned(over: Record<string, unknown>, by = signer) {
  const { signature_algorithm: _a, key_id: _k, ...rest } = att.statement;
  return by.sign({ ...rest, ...over });
}
const reason = async (body: unknown, ...extra: string[]) => {
  const r = await verify(file("case.json", body), "--key", key, ...extra);
  return `${r.code} ${r.out.trimEnd()}`;
};
const withStatement = (over: Record<string, unknown>) => ({ ...att, statement: { ...att.statement, ...over } });

describe("vram attest-verify: every field is checked, and each refusal says which", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ...["shard_id", "lease_id", "gpu_id", "tree_algorithm", "backend"].map((f): [string, Record<string, unknown>, string] => [
      f,
      { [f]: 7 },
      `malformed statement: statement.${f} must be a string`,
    ]),
    ["policy.name", { policy: { ...att.statement.policy, name: 7 } }, "malformed statement: statement.policy.name must be a string"],
    ["policy.reason", { policy: { ...att.statement.policy, reason: 7 } }, "malformed statement: statement.policy.reason must be a string"],
    ["digest, upper case", { digest: "A".repeat(64) }, "malformed statement: statement.digest must be 64 lowercase hex digits"],
    ["digest, 65 digits", { digest: "a".repeat(65) }, "malformed statement: statement.digest must be 64 lowercase hex digits"],
    ["digest, a prefix", { digest: "x" + "a".repeat(64) }, "malformed statement: statement.digest must be 64 lowercase hex digits"],
    ["tree_digest", { tree_digest: "a".repeat(63) }, "malformed statement: statement.tree_digest must be 64 lowercase hex digits"],
    ["gpu_device, text", { gpu_device: "0" }, "malformed statement: statement.gpu_device must be an integer"],
    ["vram_bytes, fraction", { vram_bytes: 1.5 }, "malformed statement: statement.vram_bytes must be an integer"],
    ["vram_bytes, negative", { vram_bytes: -1 }, "malformed statement: statement.vram_bytes must be >= 0"],
    ["sealed_at", { sealed_at: "yesterday" }, "malformed statement: statement.sealed_at must be an ISO 8601 time"],
    ["last_verified_at", { last_verified_at: 5 }, "malformed statement: statement.last_verified_at must be a string"],
    ["state", { state: "GONE" }, "malformed statement: statement.state must be SEALED or FAILED"],
    ["resident", { resident: "yes" }, "malformed statement: statement.resident must be true or false"],
    ["schema", { schema: 7 }, "malformed attestation: statement.schema must be a string"],
    ["signature_algorithm", { signature_algorithm: 7 }, "malformed attestation: statement.signature_algorithm must be a string"],
    ["issued_at", { issued_at: "now" }, "malformed attestation: statement.issued_at must be an ISO 8601 time"],
    ["key_id, a number", { key_id: 7 }, "malformed attestation: statement.key_id must be a string"],
    ["key_id, upper case", { key_id: "ABCDEF0123456789" }, "malformed attestation: statement.key_id must be 16 lowercase hex digits"],
    ["key_id, 17 digits", { key_id: "a".repeat(17) }, "malformed attestation: statement.key_id must be 16 lowercase hex digits"],
    ["key_id, a prefix", { key_id: "x" + "a".repeat(16) }, "malformed attestation: statement.key_id must be 16 lowercase hex digits"],
  ];
  test.each(cases)("statement %s", async (_name, over, why) => {
    expect(await reason(withStatement(over))).toBe(`1 INVALID: ${why}`);
  });

  const sigCases: [string, Record<string, unknown>, string][] = [
    ["algorithm", { algorithm: 7 }, "malformed attestation: signature.algorithm must be a string"],
    ["key_id", { key_id: 7 }, "malformed attestation: signature.key_id must be a string"],
    ["value, a number", { value: 7 }, "malformed attestation: signature.value must be a string"],
    ["value, not base64", { value: "!!!!" }, "malformed attestation: signature.value must be base64"],
    ["value, too short", { value: "AAAA" }, `bad signature: key ${signer.keyId} did not sign this statement`],
    [
      "key_id, another key",
      { key_id: other.keyId },
      `key id mismatch: the signature names key ${other.keyId}, the statement key ${signer.keyId}`,
    ],
  ];
  test.each(sigCases)("signature %s", async (_name, over, why) => {
    expect(await reason({ ...att, signature: { ...att.signature, ...over } })).toStartWith(`1 INVALID: ${why}`);
  });

  test("the algorithm the statement names is checked too; unknown schemas and non-objects are refused", async () => {
    expect(await reason(withStatement({ signature_algorithm: "HMAC-SHA256" }))).toBe(
      '1 INVALID: unsupported signature algorithm "HMAC-SHA256": only Ed25519 can be checked by a third party',
    );
    expect(await reason(withStatement({ schema: "other/v1" }))).toBe(
      '1 INVALID: malformed statement: statement.schema is "other/v1", not one this version knows (gpu-bridge-vram-attestation/v1, gpu-bridge-vram-set-attestation/v1)',
    );
    for (const body of ["null", "42", "[]", '"text"']) expect(await reason(body)).toStartWith("1 INVALID: malformed attestation: ");
  });

  test("a FAILED, non-resident, verified shard is attested as such and printed so", async () => {
    const failed = resigned({ state: "FAILED", resident: false, last_verified_at: "2026-12-06T01:00:00.000Z" });
    const r = await verify(file("failed.json", failed), "--key", key);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      "\n  state    FAILED, not resident; sealed " + att.statement.sealed_at + "; last verified 2026-12-06T01:00:00.000Z\n",
    );
    const fresh = await verify(file("never.json", resigned({ last_verified_at: null })), "--key", key);
    expect(fresh.out).toContain(`\n  state    SEALED, resident; sealed ${att.statement.sealed_at}; last verified never since the seal\n`);
    const enforced = resigned({ policy: { name: "vram-only", status: "enforced", reason: "checked" } });
    expect((await verify(file("enforced.json", enforced), "--key", key)).out).toContain("\n  policy   vram-only: enforced (checked)\n");
  });

  test("the share socket's open answer is read as its attestation", async () => {
    const r = await verify(file("open.json", { ok: true, shard_id: "llama-0", access: "read-only", attestation: att }), "--key", key);
    expect(r.code).toBe(0);
  });

  test("the key in each of its forms; keys that cannot be used say why", async () => {
    const v = signer.view();
    for (
      const [name, body] of [
        ["the JWK alone", JSON.stringify(v.jwk)],
        ["the jwk field alone", JSON.stringify({ jwk: v.jwk })],
        ["the raw key alone", JSON.stringify({ public_key: v.public_key })],
        ["the PEM field alone", JSON.stringify({ public_key_pem: v.public_key_pem })],
        ["a null jwk beside the raw key", JSON.stringify({ jwk: null, public_key: v.public_key })],
        ["PEM after blank lines", "\n\n" + v.public_key_pem],
      ] as const
    ) {
      const r = await verify(good, "--key", file(`key-${name}.txt`, body));
      expect([name, r.code]).toEqual([name, 0]);
    }
    const none = await verify(good, "--key", file("key-none.json", { algorithm: "Ed25519" }));
    expect([none.code, none.err]).toEqual([1, expect.stringContaining("no public_key_pem, jwk, public_key, or JWK fields")]);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }) as string;
    const r = await verify(good, "--key", file("key-rsa.pem", rsa));
    expect([r.code, r.err]).toEqual([1, expect.stringContaining("it holds an rsa key, not Ed25519")]);
  });
});

const BIN = join(REPO, "dist", "gpu-bridge-host");
test.skipIf(!existsSync(BIN))("the compiled binary checks the same files (dist/gpu-bridge-host)", () => {
  const ok = spawnSync(BIN, ["vram", "attest-verify", good, "--key", key], { encoding: "utf8", cwd: "/tmp" });
  expect([ok.status, ok.stdout.split("\n")[0]]).toEqual([
    0,
    `VALID attestation (gpu-bridge-vram-attestation/v1) signed by key ${signer.keyId} (Ed25519)`,
  ]);
  const bad = spawnSync(BIN, ["vram", "attest-verify", good, "--key", otherKey], { encoding: "utf8", cwd: "/tmp" });
  expect([bad.status, bad.stdout]).toEqual([1, expect.stringContaining("INVALID: key id mismatch")]);
});

describe("a tensor-parallel set's attestation", () => {
  const digestOf = (i: number) => String(i).repeat(64).slice(0, 64).replace(/[^0-9a-f]/g, "a");
  const members = [0, 1].map((i) => ({
    shard_index: i,
    shard_id: `tp-${i}`,
    lease_id: `L${i}`,
    gpu_id: `GPU-${i}`,
    gpu_device: i,
    vram_bytes: 4096,
    digest: digestOf(i),
    state: "SEALED",
  }));
  const statement = (over: Record<string, unknown> = {}) => ({
    schema: "gpu-bridge-vram-set-attestation/v1",
    set_id: "tp",
    worker_id: "w",
    total_shards: 2,
    set_digest: setDigest("tp", 2, members),
    set_digest_algorithm: "sha256-shard-set-v1",
    state: "ready",
    resident: true,
    members,
    issued_at: "2026-12-06T01:02:03.000Z",
    ...over,
  });
  const check = async (s: Record<string, unknown>) => {
    const out = memoryStdio();
    const code = await main(["vram", "attest-verify", file("set.json", signer.sign(s)), "--key", key], {}, out.io);
    return { code, out: out.out.join(""), err: out.err.join("") };
  };

  test("is checked offline: the signature, then the set digest recomputed from its members", async () => {
    const r = await check(statement());
    expect(r.code).toBe(0);
    expect(r.out).toContain(`  digest   sha256-shard-set-v1 ${setDigest("tp", 2, members)} (recomputed from the members)`);
    expect(r.out).toContain(`  member 1 tp-1 on GPU-1 (CUDA device 1), 4096 bytes, sha256 ${digestOf(1)}, SEALED`);
  });

  test("a signed statement whose members do not give its set digest, or miss an index, is refused", async () => {
    const wrong = await check(statement({ set_digest: "f".repeat(64) }));
    expect(wrong.code).toBe(1);
    expect(wrong.out + wrong.err).toContain(
      `inconsistent statement: set digest mismatch: the members give ${setDigest("tp", 2, members)}, the statement says ${"f".repeat(64)}`,
    );
    const short = await check(statement({ members: [members[1]] }));
    expect(short.code).toBe(1);
    expect(short.out + short.err).toContain("inconsistent statement: set members: indexes 1 are not each of 0..1 once");
    // Every index once: not twice, not one too many, not none.
    const cases: [unknown[], number, string][] = [
      [[members[0], members[0]], 2, "indexes 0,0 are not each of 0..1 once"],
      [[...members, { ...members[1], shard_index: 2 }], 2, "indexes 0,1,2 are not each of 0..1 once"],
      [[], 1, "indexes none are not each of 0..0 once"],
    ];
    for (const [m, total, why] of cases) {
      const r = await check(statement({ members: m, total_shards: total }));
      expect({ code: r.code, text: r.out + r.err }).toEqual({
        code: 1,
        text: expect.stringContaining(`inconsistent statement: set members: ${why}`),
      });
    }
  });

  test("members in any order: the digest is over index order, and they are printed in it", async () => {
    const r = await check(statement({ members: [members[1], members[0]] }));
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split("\n");
    expect(lines[1]).toBe("  set      tp of 2 shards (worker w), ready, resident");
    expect(lines.filter((l) => l.startsWith("  member ")).map((l) => l.slice(0, 16))).toEqual(["  member 0 tp-0 ", "  member 1 tp-1 "]);
    const failed = await check(statement({ members: [members[1], members[0]], state: "failed", resident: false }));
    expect(failed.out).toContain("  set      tp of 2 shards (worker w), failed, not resident");
  });

  test("each field of a set statement is checked, and the refusal names it", async () => {
    const wrong: [string, Record<string, unknown>, string][] = [
      ["set_id", { set_id: 7 }, "statement.set_id must be a string"],
      ["worker_id", { worker_id: 7 }, "statement.worker_id must be a string"],
      ["total_shards", { total_shards: 0 }, "statement.total_shards must be >= 1"],
      ["total_shards", { total_shards: 1.5 }, "statement.total_shards must be an integer"],
      ["set_digest", { set_digest: "F".repeat(64) }, "statement.set_digest must be 64 lowercase hex digits"],
      ["set_digest_algorithm", { set_digest_algorithm: "sha256" }, "statement.set_digest_algorithm must be sha256-shard-set-v1"],
      ["state", { state: 1 }, "statement.state must be a string"],
      ["resident", { resident: "yes" }, "statement.resident must be true or false"],
      ["members", { members: {} }, "statement.members must be an array"],
    ];
    const member: [string, unknown, string][] = [
      ["shard_index", "0", "statement.members[].shard_index must be an integer"],
      ["shard_id", 0, "statement.members[].shard_id must be a string"],
      ["lease_id", 0, "statement.members[].lease_id must be a string"],
      ["gpu_id", 0, "statement.members[].gpu_id must be a string"],
      ["gpu_device", "0", "statement.members[].gpu_device must be an integer"],
      ["vram_bytes", "1", "statement.members[].vram_bytes must be an integer"],
      ["digest", "x", "statement.members[].digest must be 64 lowercase hex digits"],
      ["state", 0, "statement.members[].state must be a string"],
    ];
    for (const [field, value, why] of member) {
      wrong.push([`members[].${field}`, { members: [{ ...members[0], [field]: value }, members[1]] }, why]);
    }
    for (const [field, over, why] of wrong) {
      const r = await check(statement(over));
      expect({ field, code: r.code, text: r.out + r.err }).toEqual({
        field,
        code: 1,
        text: expect.stringContaining(`malformed statement: ${why}`),
      });
    }
  });
});
