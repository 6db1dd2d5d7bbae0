/** One valibot issue as the bridge reports it: the field's dotted path and a message. */
import * as v from "valibot";

/** `{field, message}` for an issue; a missing key reads "X is required", an extra one "unknown field". */
export function describeIssue(issue: v.BaseIssue<unknown>, whole: string): { field: string; message: string } {
  const field = v.getDotPath(issue) ?? whole;
  if (issue.type === "strict_object") {
    return { field, message: issue.expected === "never" ? `unknown field ${JSON.stringify(field)}` : `${field} is required` };
  }
  return { field, message: issue.message };
}
