/** Request bodies, defined once with valibot; unknown fields are refused (a typo is an error). */
import * as v from "valibot";
import { DEFAULTS } from "../config/defaults.ts";
import { describeIssue } from "../util/issues.ts";
import { ApiError } from "./errors.ts";

// Only the JSON types here: whether a number is an integer in range is the lease manager's rule,
// checked (and worded) in one place for the API, control lines and the journal alike.
const num = (field: string) => v.number(`${field} must be a number`);

/** The query of a route that takes none: any parameter is refused, named. */
export const NO_QUERY = v.strictObject({});

export const LeaseBody = v.strictObject({
  gpu_id: v.pipe(
    v.string("gpu_id must be a string"),
    v.description("A GPU (`GPU-0`), or a MIG device by its UUID (`MIG-…`, under `serve --cdi-dir`), which the lease then holds alone."),
  ),
  worker_id: v.string("worker_id must be a string"),
  mem_mb: v.optional(
    v.pipe(
      num("mem_mb"),
      v.description("MiB; absent: the bridge's `lease-mem-mb`, refused when it sets none. At most `max-lease-mem-mb`."),
    ),
  ),
  streams: v.optional(
    v.pipe(num("streams"), v.description("Absent: the bridge's `lease-streams`, refused when it sets none. At most `max-lease-streams`.")),
  ),
  ttl_s: v.optional(
    v.pipe(
      num("ttl_s"),
      v.description(`Seconds; absent: the bridge's \`lease-ttl-s\` (default ${DEFAULTS.leaseTtlS}). At most \`max-ttl-s\`.`),
    ),
  ),
  priority: v.optional(num("priority"), 0),
});

export const RenewBody = v.strictObject({
  ttl_s: v.optional(v.pipe(num("ttl_s"), v.description("Seconds; absent: the lease's own `ttl_s`. At most `max-ttl-s`."))),
});

export const ActiveModelBody = v.strictObject({
  model_id: v.string("model_id must be a string"),
  force: v.optional(
    v.pipe(v.boolean("force must be true or false"), v.description("Activate a model that is not approved (recorded with who asked).")),
  ),
  seal_lease: v.optional(
    v.pipe(
      v.string("seal_lease must be a lease id"),
      v.description("Seal and verify the adapter's weights under this lease before the pointer moves."),
    ),
  ),
});

export const ApprovalBody = v.strictObject({
  status: v.picklist(["approved", "rejected"], "status must be approved or rejected"),
  reason: v.pipe(v.string("reason must be a string saying why"), v.description("Why (printable text, at most 512 bytes).")),
});

/**
 * A query parameter checked by `ok`; a value that fails reads "`field` must be `rule`, got …".
 * Query values are text: `ok` decides what text is a number, a mode, an id.
 */
export const queryValue = (field: string, rule: string, ok: (value: string) => boolean) =>
  v.optional(
    v.pipe(
      v.string(`${field} must be ${rule}`),
      v.description(`${field[0]!.toUpperCase()}${field.slice(1)} must be ${rule}.`),
      v.check(ok, (issue) => `${field} must be ${rule}, got ${JSON.stringify(issue.input)}`),
    ),
  );

/** A query parameter taken as given (an id, a reason). */
export const queryText = (field: string, description?: string) =>
  v.optional(
    description === undefined ? v.string(`${field} must be text`) : v.pipe(v.string(`${field} must be text`), v.description(description)),
  );

/** Every refusal's body, on every route. */
export const ErrorBody = v.strictObject({
  error: v.strictObject({
    code: v.pipe(v.string(), v.description("What went wrong, for programs: unauthorized, not_found, invalid, conflict, …")),
    message: v.pipe(v.string(), v.description("What went wrong and what to do, for people.")),
    field: v.optional(v.pipe(v.string(), v.description("The field, parameter or header at fault, when one is."))),
    retryable: v.optional(v.pipe(v.boolean(), v.description("A shard's refusal: whether asking again later can help."))),
    needed_bytes: v.optional(v.pipe(v.number(), v.description("insufficient_vram: the bytes the seal needs."))),
    available_bytes: v.optional(v.pipe(v.number(), v.description("insufficient_vram: the bytes available to it."))),
    expected_digest: v.optional(v.pipe(v.string(), v.description("integrity_violation: the SHA-256 the caller expected."))),
    actual_digest: v.optional(v.pipe(v.string(), v.description("integrity_violation: the SHA-256 of the bytes received."))),
    existing_shard_id: v.optional(v.pipe(v.string(), v.description("conflict: the shard that holds these bytes or that id."))),
  }),
});

/**
 * The request's query parameters parsed with `schema` (a strictObject of query values) or a
 * 422 naming the first bad one: an unknown parameter reads `unknown field "x"`, like an unknown
 * field of a body, and a parameter given twice is refused rather than one copy silently winning.
 */
export function parseQuery<S extends v.GenericSchema>(schema: S, req: Request): v.InferOutput<S> {
  const raw: Record<string, string> = {};
  for (const [key, value] of new URL(req.url).searchParams) {
    if (Object.hasOwn(raw, key)) throw new ApiError(422, "invalid", `${key} is given more than once`, key);
    raw[key] = value;
  }
  return parseBody(schema, raw);
}

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
