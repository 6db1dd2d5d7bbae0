/**
 * The ranges of a lease's terms, checked here once for the API, control lines and the VM's
 * records alike, each refusal a LeaseError naming the field and the value. The numbers live in
 * src/contract/limits.ts (the contract's priority range) and src/config/limits.ts (the host's
 * own limits).
 */
import { priorityProblem } from "../contract/limits.ts";
import { MAX_STREAMS, MAX_TTL_S } from "../config/limits.ts";
import { LeaseError } from "./types.ts";

/** Throws unless `value` is a lease priority (PRIORITY.min to PRIORITY.max). */
export function checkPriority(value: unknown, field = "priority"): asserts value is number {
  const problem = priorityProblem(value);
  if (problem !== null) throw new LeaseError("invalid", `${field} ${problem}`, field);
}

/** Throws unless `value` is an integer from 1 to `max`. */
export function checkCount(value: unknown, field: string, max: number): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    throw new LeaseError("invalid", `${field} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`, field);
  }
}

/** Throws unless `value` is a lease's stream count (1 to MAX_STREAMS). */
export const checkStreams = (value: unknown): void => checkCount(value, "streams", MAX_STREAMS);

/** Throws unless `value` is a lease's TTL in seconds (1 to MAX_TTL_S). */
export const checkTtl = (value: unknown): void => checkCount(value, "ttl_s", MAX_TTL_S);
