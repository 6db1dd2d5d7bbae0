/**
 * The bridge's attestation key: an Ed25519 key pair, so that anyone holding the public half can
 * check an attestation without asking the bridge (an HMAC could only be checked by the bridge).
 * The private key is made once, on the first start, and kept in the state folder
 * (`vram-attest.key`: PKCS#8 PEM, mode 0600, after one `created_at:` line); later starts load
 * it. A file that is there but unusable stops the start, naming the path: replacing it would
 * silently break every verifier that pinned the old public key. Without a state folder the key
 * lives in memory for this run only. The private key is never logged, served or returned.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { openRegular, syncDir, syncFully, writeFully } from "../util/files.ts";
import { canonicalJson } from "../util/canonical-json.ts";

/** The signature algorithm, as statements and the key route name it. */
export const ATTEST_ALG = "Ed25519" as const;
/** What the signature covers, as a signed attestation says it. */
export const SIGNED_OVER = "canonical JSON of statement (keys sorted, no spaces: RFC 8785)";

/** The public half, as `GET /v1/vram/attestation-key` serves it. */
export interface AttestationKeyView {
  readonly algorithm: typeof ATTEST_ALG;
  readonly key_id: string;
  /** The 32-byte Ed25519 public key, base64url without padding. */
  readonly public_key: string;
  readonly public_key_pem: string;
  readonly jwk: { readonly kty: "OKP"; readonly crv: "Ed25519"; readonly x: string; readonly kid: string; readonly alg: "EdDSA" };
  readonly created_at: string;
  /** True when the key lives in memory for this run only (no state folder). */
  readonly ephemeral: boolean;
}

/** A statement with its Ed25519 signature. */
export interface Signed<T> {
  readonly statement: T & { readonly signature_algorithm: typeof ATTEST_ALG; readonly key_id: string };
  readonly signature: {
    readonly algorithm: typeof ATTEST_ALG;
    readonly key_id: string;
    readonly over: string;
    readonly encoding: "base64";
    readonly value: string;
  };
}

/** Signs statements; the private key stays inside. */
export interface AttestSigner {
  readonly keyId: string;
  /** The statement, with the algorithm and key id added to it, and its signature. */
  sign<T extends Record<string, unknown>>(statement: T): Signed<T>;
  /** The public half (never the private key). */
  view(): AttestationKeyView;
}

/** The key id: the first 16 hex digits of the SHA-256 of the raw 32-byte public key. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash("sha256").update(rawPublicKey(publicKey)).digest("hex").slice(0, 16);
}

/** The 32 raw bytes of an Ed25519 public key. */
export function rawPublicKey(publicKey: KeyObject): Uint8Array {
  const x = (publicKey.export({ format: "jwk" }) as { x?: string }).x;
  if (x === undefined) throw new TypeError("Cannot read the public key: it is not an Ed25519 key");
  return new Uint8Array(Buffer.from(x, "base64url"));
}

/** The signer over `privateKey`, made at `createdAt` (ms). */
export function attestSigner(privateKey: KeyObject, createdAt: number, ephemeral: boolean): AttestSigner {
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new TypeError(`An attestation key must be Ed25519, got ${privateKey.asymmetricKeyType}`);
  }
  const publicKey = createPublicKey(privateKey);
  const keyId = keyIdOf(publicKey);
  const x = Buffer.from(rawPublicKey(publicKey)).toString("base64url");
  const view: AttestationKeyView = Object.freeze({
    algorithm: ATTEST_ALG,
    key_id: keyId,
    public_key: x,
    public_key_pem: publicKey.export({ type: "spki", format: "pem" }) as string,
    jwk: { kty: "OKP" as const, crv: "Ed25519" as const, x, kid: keyId, alg: "EdDSA" as const },
    created_at: new Date(createdAt).toISOString(),
    ephemeral,
  });
  return {
    keyId,
    sign: <T extends Record<string, unknown>>(statement: T): Signed<T> => {
      const s = { ...statement, signature_algorithm: ATTEST_ALG, key_id: keyId };
      const value = sign(null, Buffer.from(canonicalJson(s), "utf8"), privateKey).toString("base64");
      return { statement: s, signature: { algorithm: ATTEST_ALG, key_id: keyId, over: SIGNED_OVER, encoding: "base64", value } };
    },
    view: () => view,
  };
}

/** A key for this run only: nothing is written. */
export function ephemeralSigner(now: number): AttestSigner {
  return attestSigner(generateKeyPairSync("ed25519").privateKey, now, true);
}

/**
 * The bridge's signer from `path`, created (0600, in a 0700 folder) on first use with `now` as
 * its creation time. A file that cannot be read or holds no Ed25519 private key is an error
 * naming the path; it is never replaced.
 */
export function loadAttestSigner(path: string, now: number): AttestSigner {
  if (!existsSync(path)) create(path, now);
  const refuse = (why: string, cause?: unknown): never => {
    throw new Error(
      `Cannot use the attestation key ${path}: ${why}. It was left as it is: verifiers trust its public half. ` +
        "Restore it from a backup, or move it away to make a new key (attestations signed with the old one then check only against the old public key)",
      { cause },
    );
  };
  let text = "";
  try {
    chmodSync(path, 0o600);
    const fd = openRegular(path); // a folder, FIFO, device or symlink here is refused
    try {
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    refuse(`it cannot be read (${(error as Error).message})`, error);
  }
  const created = /^created_at: (\S+)$/m.exec(text)?.[1];
  const createdAt = created === undefined ? NaN : Date.parse(created);
  if (!Number.isFinite(createdAt)) refuse("its first line must be `created_at: <RFC 3339 time>`");
  const pem = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(text)?.[0];
  if (pem === undefined) refuse("it holds no PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)");
  let key: KeyObject | undefined;
  try {
    key = createPrivateKey({ key: pem!, format: "pem" });
  } catch (error) {
    refuse(`its PEM is not a private key (${(error as Error).message})`, error);
  }
  if (key!.asymmetricKeyType !== "ed25519") refuse(`it holds an ${key!.asymmetricKeyType} key, not Ed25519`);
  return attestSigner(key!, createdAt, false);
}

/** Writes a new key at `path`, exclusively: a start racing this one keeps the key that won. */
function create(path: string, now: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const pem = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (error) {
    if ((error as { code?: string }).code === "EEXIST") return;
    throw new Error(`Cannot create the attestation key ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    writeFully(fd, `created_at: ${new Date(now).toISOString()}\n${pem}`, path);
    syncFully(fd, path);
  } catch (error) {
    // Half a key would stop every later start: no key is better (the next start makes one).
    rmSync(path, { force: true });
    throw new Error(`Cannot create the attestation key ${path}: ${(error as Error).message}`, { cause: error });
  } finally {
    closeSync(fd);
  }
  syncDir(dirname(path));
}
