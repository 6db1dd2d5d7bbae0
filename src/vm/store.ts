/**
 * The VM mirror on disk (`<state-dir>/vm-mirror.json`): which lines of the VM's node files the
 * bridge wrote and which VM lines it has already read and acted on, so a restarted bridge
 * neither applies a VM control line twice nor takes its own old lines for the VM's. Written
 * whole and renamed into place (atomic for every reader); validated with valibot when read.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { describeIssue } from "../util/issues.ts";
import { VmMirror } from "./mirror.ts";

const Line = v.strictObject({ text: v.string(), own: v.boolean() });
const MirrorFile = v.strictObject({
  schema: v.literal("gpu-bridge-vm-mirror/v1"),
  files: v.record(
    v.pipe(v.string(), v.regex(/^[^/]+\/(ctl|lease|status|job)$/, "keys must be <gpu>/<ctl|lease|status|job>")),
    v.strictObject({ lines: v.array(Line), pending: v.array(v.string()) }),
  ),
});

/** Loads the mirror; null when there is none yet. Throws with the field named when the file is unusable. */
export function loadMirror(path: string): VmMirror | null {
  if (!existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (cause) {
    throw new Error(`Cannot read the VM mirror ${path}: not JSON (${(cause as Error).message}); move it away to start afresh`, { cause });
  }
  const parsed = v.safeParse(MirrorFile, raw);
  if (!parsed.success) {
    const issue = describeIssue(parsed.issues[0], "(file)");
    throw new Error(`Cannot read the VM mirror ${path}: ${issue.field}: ${issue.message}; move it away to start afresh`);
  }
  return VmMirror.fromJSON(parsed.output);
}

/** Writes the mirror atomically (a temporary file, synced, renamed over the old one). */
export function saveMirror(path: string, mirror: VmMirror): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, JSON.stringify({ schema: "gpu-bridge-vm-mirror/v1", ...mirror.toJSON() }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
