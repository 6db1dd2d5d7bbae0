/**
 * The seal key and the seal signature. The key is per bridge: 32 random bytes kept in the state
 * folder (`vram-seal.key`, mode 0600, created once), expanded with HKDF-SHA256 (empty salt)
 * into one key for shard signatures and one for the lease sockets' share tokens. It survives
 * restarts, so a seal made before still checks; it is never logged or returned. Attestations
 * are not signed with it: an HMAC only its holder can check, so they have a key pair of their
 * own (attest-key.ts).
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { openRegular, syncDir, syncFully, writeFully } from "../util/files.ts";
import { dirname } from "node:path";

export const SEAL_INFO = "gpu-bridge-host-vram-seal-v1";
/** Derives the key behind each lease's share token (share.ts). */
export const SHARE_INFO = "gpu-bridge-host-vram-share-v1";

/** HKDF-SHA256 with no salt: 32 bytes of key for `info` from `ikm`. */
export function deriveKey(ikm: string | Uint8Array, info: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, new Uint8Array(0), info, 32));
}

/** The bridge's seal secret from `path`, created (0600) on first use. */
export function loadSealSecret(path: string): Uint8Array {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      const fd = openSync(path, "wx", 0o600);
      try {
        writeFully(fd, Buffer.from(randomBytes(32)).toString("hex") + "\n", path);
        syncFully(fd, path);
      } catch (error) {
        // A short key would make every later start refuse it: no key is better than half of one.
        rmSync(path, { force: true });
        throw error;
      } finally {
        closeSync(fd);
      }
      syncDir(dirname(path));
    } catch (error) {
      if ((error as { code?: string }).code !== "EEXIST") {
        throw new Error(`Cannot create the seal key ${path}: ${(error as Error).message}`, { cause: error });
      }
    }
  }
  chmodSync(path, 0o600);
  const fd = openRegular(path); // a folder, FIFO or device here is refused, naming the path
  let text: string;
  try {
    text = readFileSync(fd, "utf8").trim();
  } finally {
    closeSync(fd);
  }
  if (!/^[0-9a-f]{64,2048}$/.test(text) || text.length % 2 !== 0) {
    throw new Error(
      `Cannot use the seal key ${path}: it must hold 32 to 1024 bytes as lowercase hex; delete it to make a new one (sealed shards and attestations signed with it stop checking)`,
    );
  }
  return new Uint8Array(Buffer.from(text, "hex"));
}

/** What a seal signs. */
export interface SealedFields {
  readonly shard_id: string;
  readonly digest: string;
  readonly sealed_at_s: number;
  readonly gpu_device: number;
  readonly vram_bytes: number;
  readonly tree_algorithm: string;
  readonly tree_digest: string;
  readonly lease_id: string;
}

/**
 * The signed message: the original's concatenation without separators (shard_id UTF-8, digest
 * as 64 hex, sealed_at u64 LE seconds, gpu_device u32 LE, vram_bytes u64 LE), then what this
 * bridge adds, each variable-length part behind a u16 LE length: the tree algorithm, the tree
 * digest's 64 hex and the lease id.
 */
export function sealMessage(f: SealedFields): Uint8Array {
  const enc = new TextEncoder();
  const id = enc.encode(f.shard_id);
  const alg = enc.encode(f.tree_algorithm);
  const lease = enc.encode(f.lease_id);
  const out = new Uint8Array(id.length + 64 + 8 + 4 + 8 + 2 + alg.length + 64 + 2 + lease.length);
  const dv = new DataView(out.buffer);
  let o = 0;
  out.set(id, o), (o += id.length);
  out.set(enc.encode(f.digest), o), (o += 64);
  dv.setBigUint64(o, BigInt(f.sealed_at_s), true), (o += 8);
  dv.setUint32(o, f.gpu_device, true), (o += 4);
  dv.setBigUint64(o, BigInt(f.vram_bytes), true), (o += 8);
  dv.setUint16(o, alg.length, true), (o += 2);
  out.set(alg, o), (o += alg.length);
  out.set(enc.encode(f.tree_digest), o), (o += 64);
  dv.setUint16(o, lease.length, true), (o += 2);
  out.set(lease, o);
  return out;
}

/** HMAC-SHA256 of `message` under `key`. */
export function hmac(key: Uint8Array, message: Uint8Array | string): Uint8Array {
  if (key.length < 32 || key.length > 1024) throw new RangeError(`A seal key must be 32 to 1024 bytes, got ${key.length}`);
  return new Uint8Array(createHmac("sha256", key).update(message).digest());
}

/** Constant-time equality of two MACs. */
export function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
