/**
 * `models verify`: a model's provenance checked as a hash chain. For the model and each of its
 * ancestors in turn, every file its manifest lists is hashed again and compared with the SHA-256
 * and size recorded there, and the hash each child recorded of its parent's manifest
 * (`[provenance] parent_sha256`) is compared with that manifest as it is now. Any file changed,
 * missing or unlisted-but-expected, and any parent edited since its child was imported, is a
 * finding. Activation runs the same check on the model it would make live.
 */
import { closeSync, readSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { LIMITS } from "../contract/limits.ts";
import { errorText } from "../util/error-text.ts";
import { openRegular, readCapped } from "../util/files.ts";
import { manifestFacts, manifestSha256 } from "./manifest.ts";

/** One thing checked, and what was found. */
export interface Finding {
  readonly model_id: string;
  /** A file's name, `manifest`, or `parent`. */
  readonly subject: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** What `verifyModel` found, the model first and its ancestors after it. */
export interface VerifyReport {
  readonly model_id: string;
  readonly ok: boolean;
  /** The model, its parent, the parent's parent... as far as the chain was followed. */
  readonly chain: readonly string[];
  readonly findings: readonly Finding[];
}

/** Deeper than any real lineage: a longer chain is a loop or a mistake. */
const MAX_DEPTH = 32;
const HASH_CHUNK = 1024 * 1024;

/** Checks `modelId` of the registry at `dir` and its ancestry (see the header). */
export function verifyModel(dir: string, modelId: string): VerifyReport {
  const findings: Finding[] = [];
  const chain: string[] = [];
  let id: string | null = modelId;
  /** What the child above recorded of `id`'s manifest (null: the model asked for, or not recorded). */
  let expected: { child: string; sha256: string | null } | null = null;
  while (id !== null) {
    if (chain.includes(id) || chain.length >= MAX_DEPTH) {
      findings.push({
        model_id: id,
        subject: "parent",
        ok: false,
        detail: `the ancestry loops or is over ${MAX_DEPTH} deep: ${[...chain, id].join(" -> ")}`,
      });
      break;
    }
    chain.push(id);
    const manifest = readManifest(dir, id);
    if (typeof manifest !== "string") {
      findings.push({ model_id: id, subject: "manifest", ok: false, detail: manifest.error });
      break;
    }
    if (expected !== null && expected.sha256 !== null) {
      const now = manifestSha256(manifest);
      findings.push(
        now === expected.sha256
          ? { model_id: id, subject: "manifest", ok: true, detail: `matches the hash ${expected.child} recorded (${short(now)})` }
          : {
            model_id: id,
            subject: "manifest",
            ok: false,
            detail: `changed since ${expected.child} was imported: its hash is ${now}, ${expected.child} recorded ${expected.sha256}`,
          },
      );
    }
    const facts = manifestFacts(manifest);
    if (facts.problem !== null) {
      findings.push({ model_id: id, subject: "manifest", ok: false, detail: `cannot be checked: ${facts.problem}` });
      break;
    }
    for (const f of facts.files) findings.push(checkFile(dir, id, f.name, f.sha256, f.bytes));
    if (facts.base === null) {
      if (facts.files.length === 0) {
        findings.push({
          model_id: id,
          subject: "files",
          ok: true,
          detail: "a base model that lists no local files (nothing to hash here)",
        });
      }
      break;
    }
    if (facts.files.length === 0) {
      findings.push({
        model_id: id,
        subject: "files",
        ok: false,
        detail: "an adapter whose manifest lists no files: its weights cannot be checked",
      });
    }
    if (facts.parentSha256 === null) {
      findings.push({
        model_id: id,
        subject: "parent",
        ok: false,
        detail: `records no hash of its parent ${
          JSON.stringify(facts.base)
        } ([provenance] parent_sha256): import it again with models import`,
      });
    }
    expected = { child: id, sha256: facts.parentSha256 };
    id = facts.base;
  }
  return { model_id: modelId, ok: findings.every((f) => f.ok), chain, findings };
}

/** The report as lines a person reads: one per finding, then the verdict. */
export function formatReport(r: VerifyReport): string {
  const lines = r.findings.map((f) => `${f.ok ? "ok     " : "DIFFERS"} ${f.model_id}: ${f.subject}: ${f.detail}`);
  const bad = r.findings.filter((f) => !f.ok).length;
  lines.push(
    r.ok
      ? `${r.model_id}: verified (${r.chain.join(" -> ")})`
      : `${r.model_id}: ${bad} difference${bad === 1 ? "" : "s"} (${r.chain.join(" -> ")})`,
  );
  return lines.join("\n") + "\n";
}

/** The differences alone, on one line (for an error message). */
export function differences(r: VerifyReport): string {
  return r.findings.filter((f) => !f.ok).map((f) => `${f.model_id}: ${f.subject}: ${f.detail}`).join("; ");
}

function readManifest(dir: string, id: string): string | { error: string } {
  const path = join(dir, "available", id, "manifest.toml");
  try {
    const bytes = readCapped(path, LIMITS.manifestBytes);
    if (bytes === null) return { error: `${path} is over ${LIMITS.manifestBytes} bytes` };
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    const missing = (error as { code?: string }).code === "ENOENT";
    return { error: missing ? `the model is not in the registry (${path} does not exist)` : `cannot read ${path}: ${errorText(error)}` };
  }
}

function checkFile(dir: string, id: string, name: string, sha256: string, bytes: number | null): Finding {
  const subject = name;
  if (name.includes("/") || name === "." || name === ".." || name === "manifest.toml") {
    return { model_id: id, subject, ok: false, detail: "the manifest lists a file outside the model's folder (or the manifest itself)" };
  }
  const path = join(dir, "available", id, name);
  let got: { sha256: string; bytes: number };
  try {
    got = hashFile(path);
  } catch (error) {
    const missing = (error as { code?: string }).code === "ENOENT";
    return { model_id: id, subject, ok: false, detail: missing ? `missing (${path})` : `cannot be read: ${errorText(error)}` };
  }
  if (got.sha256 !== sha256) {
    return { model_id: id, subject, ok: false, detail: `its SHA-256 is ${got.sha256}, the manifest says ${sha256 || "(none)"}` };
  }
  if (bytes !== null && got.bytes !== bytes) {
    return { model_id: id, subject, ok: false, detail: `it holds ${got.bytes} bytes, the manifest says ${bytes}` };
  }
  return { model_id: id, subject, ok: true, detail: `matches (${short(got.sha256)}, ${got.bytes} bytes)` };
}

/** SHA-256 and size of a regular file (a symlink is refused), read in bounded chunks. */
export function hashFile(path: string): { sha256: string; bytes: number } {
  const fd = openRegular(path);
  try {
    const hash = createHash("sha256");
    const buf = new Uint8Array(HASH_CHUNK);
    let bytes = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
    return { sha256: hash.digest("hex"), bytes };
  } finally {
    closeSync(fd);
  }
}

const short = (hex: string) => `sha256 ${hex.slice(0, 12)}…`;
