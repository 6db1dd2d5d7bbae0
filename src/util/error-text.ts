/** One line for a log: an error's message followed by each cause's, so nothing a cause says is lost. */

/** `message (cause: message (cause: …))`, the error's name in front when it is not a plain Error; at most 5 deep. */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      const name = e.name !== "Error" ? `${e.name}: ` : "";
      parts.push(`${name}${e.message}${typeof code === "string" && !e.message.includes(code) ? ` [${code}]` : ""}`);
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  if (parts.length === 0) return String(error);
  return parts.reduceRight((inner, outer) => `${outer} (cause: ${inner})`);
}
