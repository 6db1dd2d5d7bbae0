/** The seal key (HKDF-SHA256), its persistence, the signed message and the attestation's signature. */
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson } from "../../src/vram/attest.ts";
import { deriveKey, hmac, loadSealSecret, sameMac, SEAL_INFO, type SealedFields, sealMessage } from "../../src/vram/seal-key.ts";
import { hex } from "../../src/vram/tree.ts";
import { tempDir } from "../helpers.ts";

const base: SealedFields = {
  shard_id: "shard-1",
  digest: "ab".repeat(32),
  sealed_at_s: 1_700_000_000,
  gpu_device: 1,
  vram_bytes: 4096,
  tree_algorithm: "sha256-tree-64KiB",
  tree_digest: "cd".repeat(32),
  lease_id: "lease-x",
};

describe("deriveKey()", () => {
  test("is HKDF-SHA256 with no salt: the original worker's derivation gives its known key", () => {
    expect(hex(deriveKey("test-token-42", "llorch-vram-seal-v1")).slice(0, 8)).toBe("14a07e02");
    expect(deriveKey("test-token-42", SEAL_INFO)).not.toEqual(deriveKey("test-token-42", "llorch-vram-seal-v1"));
    expect(deriveKey("test-token-42", SEAL_INFO).length).toBe(32);
  });
});

describe("loadSealSecret()", () => {
  test("creates a 0600 secret once and reads the same one after a restart", () => {
    const dir = tempDir("seal-");
    const path = join(dir.path, "state", "vram-seal.key");
    const a = loadSealSecret(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(a.length).toBe(32);
    expect(loadSealSecret(path)).toEqual(a);
    writeFileSync(path, "not hex\n");
    expect(() => loadSealSecret(path)).toThrow("must hold 32 to 1024 bytes as lowercase hex");
    dir.cleanup();
  });
});

describe("sealMessage()", () => {
  test("starts with the original's concatenation, byte for byte", () => {
    const m = sealMessage(base);
    const dv = new DataView(m.buffer);
    expect(new TextDecoder().decode(m.subarray(0, 7 + 64))).toBe("shard-1" + "ab".repeat(32));
    expect(dv.getBigUint64(71, true)).toBe(1_700_000_000n);
    expect(dv.getUint32(79, true)).toBe(1);
    expect(dv.getBigUint64(83, true)).toBe(4096n);
    expect(dv.getUint16(91, true)).toBe(17);
  });

  test("every field changes the signature; the HMAC is node's HMAC-SHA256", () => {
    const key = deriveKey("k", SEAL_INFO);
    const sig = hmac(key, sealMessage(base));
    expect(hex(sig)).toBe(createHmac("sha256", key).update(sealMessage(base)).digest("hex"));
    const variants: Partial<SealedFields>[] = [
      { shard_id: "shard-2" },
      { digest: "ac".repeat(32) },
      { sealed_at_s: 1_700_000_001 },
      { gpu_device: 0 },
      { vram_bytes: 4097 },
      { tree_algorithm: "sha256-tree-1MiB" },
      { tree_digest: "ce".repeat(32) },
      { lease_id: "lease-y" },
    ];
    for (const v of variants) expect(sameMac(hmac(key, sealMessage({ ...base, ...v })), sig)).toBe(false);
    expect(sameMac(hmac(key, sealMessage(base)), sig)).toBe(true);
    expect(() => hmac(new Uint8Array(16), "x")).toThrow("A seal key must be 32 to 1024 bytes, got 16");
  });
});

describe("canonicalJson()", () => {
  test("sorts keys at every level, so the signed bytes do not depend on insertion order", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(JSON.parse(canonicalJson({ z: "é\n", a: true }))).toEqual({ z: "é\n", a: true });
  });
});
