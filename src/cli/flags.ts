/**
 * A small table-driven flag parser: `--name value`, `--name=value` and boolean `--name`.
 * Every refusal is a UsageError naming the flag and the value.
 */

/** A command line the bridge refuses; the entry point prints it and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export type FlagSpec =
  | { readonly name: string; readonly kind: "bool" }
  | { readonly name: string; readonly kind: "string"; readonly allowBlank?: boolean }
  | { readonly name: string; readonly kind: "int"; readonly min: number; readonly max: number }
  | { readonly name: string; readonly kind: "choice"; readonly choices: readonly string[] };

export type FlagValues = Record<string, string | number | boolean>;

/** Parses `argv` against `specs`; positionals are returned in order. */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): { values: FlagValues; positionals: string[] } {
  const values: FlagValues = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--") || arg === "-") {
      if (arg.startsWith("-") && arg !== "-") throw new UsageError(`Unknown option ${JSON.stringify(arg)}`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs.find((s) => s.name === name);
    if (spec === undefined) throw new UsageError(`Unknown option --${name}`);
    if (Object.hasOwn(values, name)) throw new UsageError(`Option --${name} was given more than once`);
    if (spec.kind === "bool") {
      if (eq >= 0) throw new UsageError(`Option --${name} takes no value, got ${JSON.stringify(arg.slice(eq + 1))}`);
      values[name] = true;
      continue;
    }
    let raw: string;
    if (eq >= 0) {
      raw = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw new UsageError(`Option --${name} needs a value`);
      raw = next;
      i++;
    }
    values[name] = convert(spec, raw);
  }
  return { values, positionals };
}

function convert(spec: Exclude<FlagSpec, { kind: "bool" }>, raw: string): string | number {
  const flag = `--${spec.name}`;
  switch (spec.kind) {
    case "string":
      if (!spec.allowBlank && raw.trim() === "") throw new UsageError(`Option ${flag} needs a non-blank value`);
      return raw;
    case "choice":
      if (!spec.choices.includes(raw)) {
        throw new UsageError(`Option ${flag} must be one of ${spec.choices.join(", ")}, got ${JSON.stringify(raw)}`);
      }
      return raw;
    case "int": {
      if (!/^[0-9]+$/.test(raw)) throw new UsageError(`Option ${flag} needs an integer, got ${JSON.stringify(raw)}`);
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n < spec.min || n > spec.max) {
        throw new UsageError(`Option ${flag} must be ${spec.min}-${spec.max}, got ${raw}`);
      }
      return n;
    }
  }
}
