/**
 * `audit verify DIR`: walks a trail's files in order and checks every line's chain (its `prev`
 * is the hash of the line before), the ids (each change one more than the last, a gap's ids
 * declared), and the files (numbered without holes, each after the first opening with an anchor
 * that names the previous file and its last change). The first line that breaks a rule is named
 * with its file and line number. Reads only.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../util/sha256.ts";
import { GENESIS, lastIdOf, parseTrailLine, trailFileName, trailFileNumber, type TrailLine } from "./chain.ts";

/** What a verification found. */
export type Verdict =
  | {
    readonly ok: true;
    readonly files: number;
    /** Changes checked. */
    readonly changes: number;
    /** The first and last change ids the trail accounts for (0 when empty). */
    readonly firstId: number;
    readonly lastId: number;
    /** The hash of the last line (GENESIS when empty): compare it with a copy kept elsewhere. */
    readonly lastHash: string;
    /** The file the trail starts at when older files were dropped (retention), else null. */
    readonly startsAfter: string | null;
    /** Bytes after the last newline of the last file (a write torn by a crash), else null. */
    readonly tornTail: number | null;
  }
  | { readonly ok: false; readonly file: string; readonly line: number; readonly problem: string };

/** The trail files in `dir`, oldest first. */
export function trailFiles(dir: string): { n: number; name: string }[] {
  const out: { n: number; name: string }[] = [];
  for (const name of readdirSync(dir)) {
    const n = trailFileNumber(name);
    if (n !== null) out.push({ n, name });
  }
  return out.sort((a, b) => a.n - b.n);
}

/** Verifies the trail in `dir`. */
export function verifyTrail(dir: string): Verdict {
  const files = trailFiles(dir);
  let prevHash = GENESIS;
  let lastId = 0;
  let firstId = 0;
  let changes = 0;
  let startsAfter: string | null = null;
  let tornTail: number | null = null;
  for (let f = 0; f < files.length; f++) {
    const { n, name } = files[f]!;
    const bad = (line: number, problem: string): Verdict => ({ ok: false, file: name, line, problem });
    if (f > 0 && n !== files[f - 1]!.n + 1) {
      return bad(1, `${trailFileName(files[f - 1]!.n + 1)} is missing: the files run from ${files[f - 1]!.name} to ${name}`);
    }
    const text = readFileSync(join(dir, name), "utf8");
    const lines = text.split("\n");
    const tail = lines.pop()!;
    if (tail !== "") {
      if (f < files.length - 1) return bad(lines.length + 1, "the line does not end with a newline, and a later file follows");
      tornTail = Buffer.byteLength(tail);
    }
    if (lines.length === 0) {
      if (f < files.length - 1) return bad(1, "the file is empty, and a later file follows");
      continue;
    }
    for (let i = 0; i < lines.length; i++) {
      const parsed = parseTrailLine(lines[i]!);
      if (typeof parsed === "string") return bad(i + 1, `the line is damaged: ${parsed}`);
      const first = f === 0 && i === 0;
      if (first && n > 1) {
        // Retention dropped the files before this one: the chain is checked from its anchor on.
        if (parsed.kind !== "anchor") return bad(1, `the trail starts at file ${n} but its first line is not an anchor`);
        startsAfter = parsed.file;
        lastId = parsed.lastId;
      } else {
        if (parsed.prev !== prevHash) {
          return bad(
            i + 1,
            `the chain is broken: prev is ${parsed.prev.slice(0, 12)}…, the line before hashes to ${prevHash.slice(0, 12)}…`,
          );
        }
        const problem = sequenceProblem(parsed, lastId, i === 0 && f > 0 ? files[f - 1]!.name : null, first);
        if (problem !== null) return bad(i + 1, problem);
      }
      if (parsed.kind === "change") {
        if (firstId === 0) firstId = parsed.id;
        changes++;
      }
      lastId = lastIdOf(parsed);
      prevHash = sha256Hex(lines[i]!);
    }
  }
  return { ok: true, files: files.length, changes, firstId, lastId, lastHash: prevHash, startsAfter, tornTail };
}

/** What is wrong with `l` following a line that ended at `lastId`, else null. */
function sequenceProblem(l: TrailLine, lastId: number, previousFile: string | null, first: boolean): string | null {
  if (previousFile !== null) {
    if (l.kind !== "anchor") return `a file after the first must open with an anchor naming ${previousFile}`;
    if (l.file !== previousFile || l.lastId !== lastId) {
      return `the anchor names ${l.file} ending at change ${l.lastId}, but ${previousFile} ends at change ${lastId}`;
    }
    return null;
  }
  if (l.kind === "anchor") return "an anchor in the middle of a file";
  const from = l.kind === "change" ? l.id : l.from;
  // The first line of a whole trail may start anywhere (a bridge that ran before its trail did).
  if (!first && from !== lastId + 1) {
    return `expected change ${lastId + 1} next, found ${l.kind === "gap" ? "a gap from " : "change "}${from}`;
  }
  return null;
}
