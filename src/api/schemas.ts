/** Request bodies, defined once with valibot; unknown fields are refused (a typo is an error). */
import * as v from "valibot";
import { describeIssue } from "../util/issues.ts";
import { ApiError } from "./errors.ts";

// Only the JSON types here: whether a number is an integer in range is the lease manager's rule,
// checked (and worded) in one place for the API, control lines and the journal alike.
const num = (field: string) => v.number(`${field} must be a number`);

export const LeaseBody = v.strictObject({
  gpu_id: v.string("gpu_id must be a string"),
  worker_id: v.string("worker_id must be a string"),
  mem_mb: num("mem_mb"),
  streams: num("streams"),
  ttl_s: num("ttl_s"),
  priority: v.optional(num("priority"), 0),
});

export const RenewBody = v.strictObject({ ttl_s: v.optional(num("ttl_s")) });

export const ActiveModelBody = v.strictObject({ model_id: v.string("model_id must be a string") });

/** Parses `raw` with `schema` or throws a 422 naming the first bad field. */
export function parseBody<S extends v.GenericSchema>(schema: S, raw: unknown): v.InferOutput<S> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ApiError(422, "invalid", "Request body must be a JSON object");
  }
  const r = v.safeParse(schema, raw);
  if (r.success) return r.output;
  const { field, message } = describeIssue(r.issues[0], "");
  throw new ApiError(422, "invalid", message, field || undefined);
}
