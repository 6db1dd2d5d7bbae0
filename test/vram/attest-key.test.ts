/**
 * The attestation key (src/vram/attest-key.ts): made once with mode 0600 and the same key on
 * every later start; a file that cannot be used stops the start naming its path and is left as
 * it is; what it signs checks with node:crypto, with openssl, and over bytes `jq -cjS` rebuilds.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createHash, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createBridge } from "../../src/app/bridge.ts";
import { parseCommand } from "../../src/cli/options.ts";
import { mockBackend } from "../../src/inventory/mock.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { ephemeralSigner, loadAttestSigner } from "../../src/vram/attest-key.ts";
import { canonicalJson } from "../../src/util/canonical-json.ts";
import { memoryLogger, tempFolder } from "../helpers.ts";

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

describe("loadAttestSigner()", () => {
  test("makes the key once, mode 0600, and loads the same one on the next start", () => {
    const path = join(tempFolder("attest-key-"), "state", "vram-attest.key");
    const first = loadAttestSigner(path, Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(path, "..")).mode & 0o777).toBe(0o700);
    const text = readFileSync(path, "utf8");
    expect(text).toStartWith("created_at: 2026-01-02T03:04:05.000Z\n-----BEGIN PRIVATE KEY-----\n");
    const again = loadAttestSigner(path, Date.UTC(2027, 0, 1));
    expect(again.keyId).toBe(first.keyId);
    expect(again.view()).toEqual(first.view());
    expect(again.view().created_at).toBe("2026-01-02T03:04:05.000Z");
    expect(readFileSync(path, "utf8")).toBe(text);
    expect(first.keyId).toMatch(/^[0-9a-f]{16}$/);
    // A key another start made is kept, even if its mode was loosened by hand.
    spawnSync("chmod", ["0644", path]);
    expect(loadAttestSigner(path, 0).keyId).toBe(first.keyId);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  test("the view holds the public half only; the key id is the SHA-256 of the raw key, cut to 16 hex", () => {
    const s = ephemeralSigner(0);
    const v = s.view();
    const raw = Buffer.from(v.public_key, "base64url");
    expect(raw.length).toBe(32);
    expect(v.key_id).toBe(createHash("sha256").update(raw).digest("hex").slice(0, 16));
    expect(v.jwk).toEqual({ kty: "OKP", crv: "Ed25519", x: v.public_key, kid: v.key_id, alg: "EdDSA" });
    expect(createPublicKey(v.public_key_pem).export({ format: "jwk" })).toMatchObject({ x: v.public_key });
    expect(JSON.stringify(v)).not.toContain("PRIVATE");
    expect(v.ephemeral).toBe(true);
  });

  const bad: [string, (path: string) => void, string][] = [
    ["garbage", (p) => writeFileSync(p, "created_at: 2026-01-01T00:00:00Z\nnot a key\n"), "it holds no PKCS#8 PEM private key"],
    [
      "no created_at",
      (p) => writeFileSync(p, generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" })),
      "its first line must be `created_at: <RFC 3339 time>`",
    ],
    [
      "an RSA key",
      (p) =>
        writeFileSync(
          p,
          "created_at: 2026-01-01T00:00:00Z\n" +
            generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }),
        ),
      "it holds an rsa key, not Ed25519",
    ],
    ["a folder", (p) => mkdirSync(p), "it cannot be read"],
  ];
  test.each(bad)("%s: an error naming the path; the file is left as it is", (_name, make, why) => {
    const path = join(tempFolder("attest-key-bad-"), "vram-attest.key");
    make(path);
    const before = statSync(path).isFile() ? readFileSync(path, "utf8") : null;
    expect(() => loadAttestSigner(path, 0)).toThrow(`Cannot use the attestation key ${path}: ${why}`);
    expect(() => loadAttestSigner(path, 0)).toThrow("It was left as it is: verifiers trust its public half");
    if (before !== null) expect(readFileSync(path, "utf8")).toBe(before);
  });
});

describe("sign()", () => {
  const signer = ephemeralSigner(0);
  const signed = signer.sign({ schema: "x/v1", b: [1, "ü", null], a: { z: true, y: "line\nbreak" } });

  test("the statement names the algorithm and key; the signature is Ed25519 over its canonical JSON", () => {
    expect(signed.statement).toMatchObject({ signature_algorithm: "Ed25519", key_id: signer.keyId });
    expect(signed.signature).toMatchObject({ algorithm: "Ed25519", key_id: signer.keyId, encoding: "base64" });
    const key = createPublicKey({ key: signer.view().jwk, format: "jwk" });
    const sig = Buffer.from(signed.signature.value, "base64");
    expect(verify(null, Buffer.from(canonicalJson(signed.statement)), key, sig)).toBe(true);
    const edited = { ...signed.statement, schema: "x/v2" };
    expect(verify(null, Buffer.from(canonicalJson(edited)), key, sig)).toBe(false);
  });

  test.skipIf(!has("jq") || !has("openssl"))("jq -cjS rebuilds the signed bytes and openssl checks them with the PEM", () => {
    const dir = tempFolder("attest-openssl-");
    writeFileSync(join(dir, "a.json"), JSON.stringify(signed, null, 2));
    writeFileSync(join(dir, "key.pem"), signer.view().public_key_pem);
    const script = "jq -cjS .statement a.json > msg && jq -r .signature.value a.json | base64 -d > sig && " +
      "openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in msg -sigfile sig";
    const ok = spawnSync("sh", ["-c", script], { cwd: dir, encoding: "utf8" });
    expect(readFileSync(join(dir, "msg"), "utf8")).toBe(canonicalJson(signed.statement));
    expect(ok.stdout.trim()).toBe("Signature Verified Successfully");
    writeFileSync(join(dir, "a.json"), JSON.stringify(signed).replace('"x/v1"', '"x/v9"'));
    const bad = spawnSync("sh", ["-c", script], { cwd: dir, encoding: "utf8" });
    expect(bad.status).not.toBe(0);
    expect(bad.stdout.trim()).toBe("Signature Verification Failure");
  });
});

test("a bridge that keeps nothing on disk signs with an ephemeral key, and its log says so", async () => {
  const state = join(tempFolder("attest-ephemeral-"), "state");
  const c = parseCommand(["serve", "--mock", "--state-dir", state, "--no-api"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const { log, lines } = memoryLogger();
  const bridge = await createBridge(c.options, { runtime: bunRuntime(), log, backend: mockBackend() }, { noJournal: true });
  try {
    const view = bridge.vram.attestationKey();
    expect(view.ephemeral).toBe(true);
    expect(lines.filter((l) => l.includes(`attestations are signed with an ephemeral key ${view.key_id}`)).length).toBe(1);
    expect(existsSync(join(state, "vram-attest.key"))).toBe(false);
  } finally {
    await bridge.stop();
  }
});

test("a bridge whose key file is damaged does not start, and the error names the file", async () => {
  const state = join(tempFolder("attest-damaged-"), "state");
  mkdirSync(state, { recursive: true });
  const path = join(state, "vram-attest.key");
  writeFileSync(path, "created_at: 2026-01-01T00:00:00Z\n-----BEGIN PRIVATE KEY-----\ncut short\n");
  const c = parseCommand(["serve", "--mock", "--state-dir", state, "--no-api"], {});
  if (c.kind !== "serve") throw new Error("expected serve");
  const started = createBridge(c.options, { runtime: bunRuntime(), log: memoryLogger().log, backend: mockBackend() });
  await expect(started).rejects.toThrow(`Cannot use the attestation key ${path}: it holds no PKCS#8 PEM private key`);
  expect(readFileSync(path, "utf8")).toStartWith("created_at: 2026-01-01T00:00:00Z\n-----BEGIN PRIVATE KEY-----\ncut short");
});

test("canonicalJson() sorts keys at every level, drops undefined members, and writes no spaces", () => {
  expect(canonicalJson({ b: [{ d: 1, c: undefined }, "x y"], a: null, e: undefined })).toBe('{"a":null,"b":[{"d":1},"x y"]}');
});
