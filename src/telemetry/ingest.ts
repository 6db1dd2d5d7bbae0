/**
 * Telemetry ingest: a batch is validated whole (one bad record refuses the batch, naming it),
 * completed from the active model, spooled with one sync, and handed to the forwarder.
 */
import { decodeCbor } from "../util/cbor.ts";
import { checkCbor, checkJson, StrictInputError } from "../util/strict-input.ts";
import type { ModelCatalog } from "../contract/models.ts";
import { acceptRecord, activeModelOf, type TelemetryRecord } from "./record.ts";
import type { Spool } from "./spool.ts";

/** A batch the bridge refuses; `field` names the record and the field. */
export class TelemetryError extends Error {
  override name = "TelemetryError";
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** Parses a request body into raw records: JSON (object or array), NDJSON or CBOR. */
export function parseTelemetryBody(type: string, body: Uint8Array): unknown[] {
  if (type === "application/cbor") {
    let value: unknown;
    try {
      checkCbor(body);
      value = decodeCbor(body);
    } catch (error) {
      const what = error instanceof StrictInputError ? "is refused" : "is not valid CBOR";
      throw new TelemetryError("(body)", `Request body ${what}: ${(error as Error).message}`);
    }
    return Array.isArray(value) ? value : [value];
  }
  const text = new TextDecoder().decode(body);
  try {
    checkJson(text);
  } catch (error) {
    throw new TelemetryError("(body)", `Request body is refused: ${(error as Error).message}`);
  }
  if (type === "application/x-ndjson") {
    return text.split("\n").map((line, i) => [line, i] as const).filter(([line]) => line.trim() !== "").map(([line, i]) => {
      try {
        return JSON.parse(line) as unknown;
      } catch {
        throw new TelemetryError(`line ${i + 1}`, `line ${i + 1} is not valid JSON`);
      }
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TelemetryError("(body)", `Request body is not valid JSON: ${(error as Error).message}`);
  }
  return Array.isArray(value) ? value : [value];
}

/** Validates and spools `raw`; returns the accepted records. */
export function ingest(raw: readonly unknown[], catalog: ModelCatalog, spool: Spool): TelemetryRecord[] {
  if (raw.length === 0) throw new TelemetryError("(body)", "no telemetry records in the request");
  const active = activeModelOf(catalog);
  const records: TelemetryRecord[] = [];
  raw.forEach((r, i) => {
    const result = acceptRecord(r, active);
    if (!result.ok) {
      const where = raw.length === 1 ? result.field : `records[${i}].${result.field}`;
      throw new TelemetryError(where, raw.length === 1 ? result.message : `record ${i}: ${result.message}`);
    }
    records.push(result.record);
  });
  spool.append(records);
  return records;
}
