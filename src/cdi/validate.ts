/**
 * Spec validation: the schema (valibot, every field of CDI 1.1.0, strict objects), then the
 * rules of rules.ts. Every problem names the file, the device (where there is one) and the field.
 */
import * as v from "valibot";
import { CdiSpec } from "./schema.ts";
import { type Problem, specProblems, type ValidateOptions } from "./rules.ts";

export { formatProblem, type Problem, type ValidateOptions } from "./rules.ts";

/** Validates a parsed spec; the spec comes back typed when the schema accepted it. */
export function validateSpec(raw: unknown, o: ValidateOptions): { spec: CdiSpec | null; problems: Problem[] } {
  const problems: Problem[] = [];
  const add = (severity: Problem["severity"], field: string, message: string, device?: string) =>
    problems.push({ severity, file: o.file, field, message, ...(device !== undefined && { device }) });
  const deviceAt = (i: unknown) => {
    const d = (raw as { devices?: { name?: unknown }[] })?.devices?.[i as number];
    return typeof d?.name === "string" ? d.name : undefined;
  };

  const parsed = v.safeParse(CdiSpec, raw);
  if (!parsed.success) {
    for (const issue of parsed.issues) {
      const path = issue.path ?? [];
      const field = path.map((p) => (typeof p.key === "number" ? `[${p.key}]` : `.${String(p.key)}`)).join("").replace(/^\./, "") ||
        "(spec)";
      const device = path[0]?.key === "devices" && path.length > 1 ? deviceAt(path[1]!.key) : undefined;
      const message = issue.expected === "never"
        ? "unknown field (no CDI version has it)"
        : issue.received === "undefined"
        ? "required field is missing"
        : issue.message;
      add("error", field, message, device);
    }
    return { spec: null, problems };
  }
  return { spec: parsed.output, problems: specProblems(parsed.output, o) };
}
