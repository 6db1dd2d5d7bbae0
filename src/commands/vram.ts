/**
 * `vram attest-verify FILE --key KEYFILE [--key-id ID] [--json]`: checks a saved shard
 * attestation offline against the bridge's public key; exit 0 when it holds, 1 with the reason.
 */
import type { Command } from "../cli/options.ts";
import { ATTESTATION_FILE_BYTES } from "../config/limits.ts";
import { readCapped } from "../util/files.ts";
import { parsePublicKey, verifyAttestation } from "../vram/attest-verify.ts";
import type { CommandIo } from "./types.ts";

/** A file's text, at most `ATTESTATION_FILE_BYTES`; `-` is standard input. */
async function readText(path: string, what: string, io: CommandIo): Promise<string> {
  if (path === "-") return await io.stdin();
  let bytes: Uint8Array | null;
  try {
    bytes = readCapped(path, ATTESTATION_FILE_BYTES, true);
  } catch (error) {
    throw new Error(`Cannot read the ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (bytes === null) throw new Error(`Cannot read the ${what} ${path}: it is over ${ATTESTATION_FILE_BYTES} bytes`);
  return new TextDecoder().decode(bytes);
}

/** Prints the verdict; 0 when the attestation holds, 1 when not. */
export async function run(c: Extract<Command, { kind: "vram-attest-verify" }>, io: CommandIo): Promise<number> {
  if (c.file === "-" && c.key === "-") throw new Error("Cannot read both the attestation and the key from standard input");
  const key = parsePublicKey(await readText(c.key, "key", io), c.key === "-" ? "standard input" : c.key);
  const verdict = verifyAttestation(await readText(c.file, "attestation", io), key, c.keyId);
  if (c.json) {
    await io.stdout(JSON.stringify(verdict.ok ? { ok: true, key_id: verdict.key_id, statement: verdict.statement } : verdict) + "\n");
  } else if (verdict.ok) {
    await io.stdout(`VALID attestation (${verdict.schema}) signed by key ${verdict.key_id} (Ed25519)\n  ${verdict.lines.join("\n  ")}\n`);
  } else {
    await io.stdout(`INVALID: ${verdict.reason}\n`);
  }
  return verdict.ok ? 0 : 1;
}
