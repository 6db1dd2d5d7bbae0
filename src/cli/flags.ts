/**
 * A small table-driven flag parser: `--name value`, `--name=value` and boolean `--name`.
 * Every refusal is a UsageError naming the flag and the value.
 *
 * A table maps each flag to a spec string: `bool`, `string`, `string:blank` (a blank value is
 * allowed), `int:MIN:MAX` or `choice:a|b|c`. Strings rather than objects on purpose: tables of
 * object literals cost a third of a million instructions to build at every start, in the cold
 * interpreter, for flags that are mostly never given. A spec is read only when its flag is.
 */

/** A command line the bridge refuses; the entry point prints it and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A flag's spec string (see above). */
export type FlagSpec = "bool" | "string" | "string:blank" | `int:${number}:${number}` | `choice:${string}`;
export type FlagTable = Readonly<Record<string, FlagSpec>>;

type Choices<S extends string> = S extends `${infer A}|${infer B}` ? A | Choices<B> : S;
/** The value a spec parses to: `true`, a number, one of the choices, or a string. */
export type FlagValue<S extends FlagSpec> = S extends "bool" ? true
  : S extends `int:${string}` ? number
  : S extends `choice:${infer C}` ? Choices<C>
  : string;
/** The parsed flags of `T`, each absent unless given. */
export type FlagValues<T extends FlagTable> = { -readonly [K in keyof T]?: FlagValue<T[K]> };

/** Parses `argv` against `table`; positionals are returned in order. */
export function parseFlags<const T extends FlagTable>(argv: readonly string[], table: T): { values: FlagValues<T>; positionals: string[] } {
  const values: Record<string, string | number | true> = {};
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
    const spec = Object.hasOwn(table, name) ? table[name]! : undefined;
    if (spec === undefined) throw new UsageError(`Unknown option --${name}`);
    if (Object.hasOwn(values, name)) throw new UsageError(`Option --${name} was given more than once`);
    if (spec === "bool") {
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
    values[name] = convert(name, spec, raw);
  }
  // Each value was converted by its own flag's spec, which is what FlagValues<T> states.
  return { values: values as FlagValues<T>, positionals };
}

function convert(name: string, spec: string, raw: string): string | number {
  const flag = `--${name}`;
  const [kind, a, b] = spec.split(":");
  switch (kind) {
    case "string":
      if (a !== "blank" && raw.trim() === "") throw new UsageError(`Option ${flag} needs a non-blank value`);
      return raw;
    case "choice": {
      const choices = a!.split("|");
      if (!choices.includes(raw)) throw new UsageError(`Option ${flag} must be one of ${choices.join(", ")}, got ${JSON.stringify(raw)}`);
      return raw;
    }
    case "int": {
      const min = Number(a);
      const max = Number(b);
      // A sign, a fraction or a word is refused saying what is wanted: "-5" is not "no integer"
      // but one below the range, and the message should say the flag needs a positive one.
      if (!/^[0-9]+$/.test(raw)) {
        const kind = min >= 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : "an integer";
        throw new UsageError(`Option ${flag} needs ${kind} (${min}-${max}), got ${JSON.stringify(raw)}`);
      }
      const n = Number(raw);
      if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`Option ${flag} must be ${min}-${max}, got ${raw}`);
      return n;
    }
    default:
      throw new Error(`Bad flag spec for ${flag}: ${JSON.stringify(spec)}`);
  }
}
