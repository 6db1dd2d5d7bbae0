/**
 * Parses a snapshot with the VM receiver's rules (docs/protocol.md#8-the-console): schema line first,
 * `active` and `telemetry` required, nothing after `end`, unknown keywords or fields refused,
 * per-item limits, and an active model that is listed whenever models exist.
 */
import type { Namespace, NodePayloads } from "../../src/contract/namespace.ts";
import type { ModelEntry } from "../../src/contract/models.ts";
import { gpuIdProblem, LIMITS, modelIdProblem } from "../../src/contract/limits.ts";
import { decodeBase64 } from "../../src/util/base64.ts";
import { decodeLossless } from "../../src/util/bytes.ts";
import { SNAPSHOT_SCHEMA } from "../../src/contract/snapshot.ts";

/** A snapshot the receiver refuses; `message` is the reason it reports. */
export class SnapshotParseError extends Error {
  override name = "SnapshotParseError";
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

const FIELDS = {
  node: ["id", "info", "ctl", "lease", "status"],
  model: ["id", "manifest"],
  active: ["id"],
  telemetry: ["schema"],
} as const;
type Keyword = keyof typeof FIELDS;

/** Parses snapshot bytes into the namespace they describe, or throws SnapshotParseError. */
export function parseSnapshot(bytes: Uint8Array): Namespace {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new SnapshotParseError("snapshot is not valid UTF-8");
  }
  if (!text.endsWith("\n")) throw new SnapshotParseError("snapshot does not end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines[0] !== `schema ${SNAPSHOT_SCHEMA}`) {
    throw new SnapshotParseError(`first line must be 'schema ${SNAPSHOT_SCHEMA}', got ${JSON.stringify(lines[0])}`);
  }
  const endAt = lines.indexOf("end");
  if (endAt < 0) throw new SnapshotParseError("snapshot has no 'end' line");
  if (endAt !== lines.length - 1) throw new SnapshotParseError("snapshot has content after 'end'");

  const nodes: NodePayloads[] = [];
  const models: ModelEntry[] = [];
  let active: string | undefined;
  let telemetrySchema: string | undefined;
  for (let i = 1; i < endAt; i++) {
    const lineNo = i + 1;
    const [keyword, fields] = splitLine(lines[i]!, lineNo);
    if (keyword === "node") {
      const id = fields.id!;
      check(gpuIdProblem(id), `line ${lineNo}: GPU id ${JSON.stringify(id)}`);
      if (nodes.some((n) => n.id === id)) throw new SnapshotParseError(`line ${lineNo}: duplicate GPU id ${JSON.stringify(id)}`);
      nodes.push({
        id,
        info: text64(fields.info!, `node ${id} info`, Infinity),
        // The VM checks node logs against their append caps only when its clients append, never
        // in a snapshot (docs/protocol.md#8-the-console), and keeps their bytes as they are, UTF-8 or not.
        ctl: log64(fields.ctl!, `node ${id} ctl`),
        lease: log64(fields.lease!, `node ${id} lease`),
        status: log64(fields.status!, `node ${id} status`),
      });
    } else if (keyword === "model") {
      const id = fields.id!;
      check(modelIdProblem(id), `line ${lineNo}: model id ${JSON.stringify(id)}`);
      if (models.some((m) => m.model_id === id)) throw new SnapshotParseError(`line ${lineNo}: duplicate model id ${JSON.stringify(id)}`);
      models.push({ model_id: id, manifest_toml: text64(fields.manifest!, `model ${id} manifest`, LIMITS.manifestBytes) });
    } else if (keyword === "active") {
      if (active !== undefined) throw new SnapshotParseError(`line ${lineNo}: duplicate 'active' line`);
      active = fields.id!;
    } else {
      if (telemetrySchema !== undefined) throw new SnapshotParseError(`line ${lineNo}: duplicate 'telemetry' line`);
      telemetrySchema = text64(fields.schema!, "telemetry schema", LIMITS.schemaBytes);
    }
  }
  if (active === undefined) throw new SnapshotParseError("snapshot has no 'active' line");
  if (telemetrySchema === undefined) throw new SnapshotParseError("snapshot has no 'telemetry' line");
  if (models.length > 0 && !models.some((m) => m.model_id === active)) {
    throw new SnapshotParseError(`active model ${JSON.stringify(active)} is not listed`);
  }
  return { nodes, models, active, telemetrySchema };
}

function splitLine(line: string, lineNo: number): [Keyword, Record<string, string>] {
  const parts = line.split(" ");
  const keyword = parts[0]!;
  if (!Object.hasOwn(FIELDS, keyword)) {
    throw new SnapshotParseError(`line ${lineNo}: unknown keyword ${JSON.stringify(keyword)}`);
  }
  const allowed: readonly string[] = FIELDS[keyword as Keyword];
  const fields: Record<string, string> = {};
  for (const part of parts.slice(1)) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    if (eq < 0 || !allowed.includes(key)) {
      throw new SnapshotParseError(`line ${lineNo}: unknown field ${JSON.stringify(key)} in '${keyword}'`);
    }
    if (Object.hasOwn(fields, key)) throw new SnapshotParseError(`line ${lineNo}: duplicate field ${JSON.stringify(key)}`);
    fields[key] = part.slice(eq + 1);
  }
  for (const key of allowed) {
    if (!Object.hasOwn(fields, key)) throw new SnapshotParseError(`line ${lineNo}: '${keyword}' lacks field ${JSON.stringify(key)}`);
  }
  return [keyword as Keyword, fields];
}

function text64(value: string, what: string, maxBytes: number): string {
  const bytes = decodeBase64(value);
  if (bytes === null) throw new SnapshotParseError(`${what} is not valid base64`);
  if (bytes.length > maxBytes) throw new SnapshotParseError(`${what} is ${bytes.length} bytes, over the ${maxBytes}-byte limit`);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SnapshotParseError(`${what} is not valid UTF-8`);
  }
}

function log64(value: string, what: string): string {
  const bytes = decodeBase64(value);
  if (bytes === null) throw new SnapshotParseError(`${what} is not valid base64`);
  return decodeLossless(bytes);
}

function check(problem: string | null, what: string): void {
  if (problem !== null) throw new SnapshotParseError(`${what} ${problem}`);
}
