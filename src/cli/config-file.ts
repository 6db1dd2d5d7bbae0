/**
 * `--config FILE`: the settings an operator standardises across a fleet, in one TOML file whose
 * keys are serve's flags without their dashes (`max-streams-per-gpu = 8`, `tokens = "/etc/…"`,
 * `mock = true`). The file is turned into flags and parsed by the very flag table the command
 * line is (options.ts `withConfig`), so a bad value gets the flag's own message, and the
 * command line overrides the file flag by flag. Loaded only when --config or `config check` is
 * given: never at an ordinary start.
 */
import { closeSync, readFileSync } from "node:fs";
import { parse as parseToml } from "smol-toml";
import { openRegular } from "../util/files.ts";
import { UsageError } from "./flags.ts";
import { type BridgeOptions, type ConfigSource, serveFlags, withConfig } from "./options.ts";

/** Flags that say what to do now, not how: they have no place in a settings file. */
const NOT_SETTINGS = new Set(["help", "version", "list", "config"]);

/** The settings of a config file's `text` as command-line flags; throws UsageError naming `path` and the key. */
export function configArgv(text: string, path: string): string[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (error) {
    throw new UsageError(`Config ${path}: it is not TOML: ${(error as Error).message.split("\n")[0]}`);
  }
  const table: Readonly<Record<string, string>> = serveFlags();
  const argv: string[] = [];
  for (const [key, value] of Object.entries(doc)) {
    const spec = Object.hasOwn(table, key) && !NOT_SETTINGS.has(key) ? table[key]! : undefined;
    if (spec === undefined) {
      throw new UsageError(
        `Config ${path}: unknown setting ${JSON.stringify(key)}; the settings are serve's flags without their dashes ` +
          `(gpu-bridge-host serve --help), but for ${[...NOT_SETTINGS].join(", ")}`,
      );
    }
    if (spec === "bool") {
      if (typeof value !== "boolean") throw new UsageError(`Config ${path}: ${key} must be true or false, got ${JSON.stringify(value)}`);
      if (value) argv.push(`--${key}`);
    } else if (typeof value === "string" || (typeof value === "number" && spec.startsWith("int:"))) {
      argv.push(`--${key}=${value}`);
    } else {
      const want = spec.startsWith("int:") ? "an integer" : "a string";
      throw new UsageError(`Config ${path}: ${key} must be ${want}, got ${JSON.stringify(value) ?? String(value)}`);
    }
  }
  return argv;
}

/** The config file at `path` as flags (`configArgv`); a file that cannot be read is a UsageError naming it. */
export function readConfigArgv(path: string): string[] {
  let text: string;
  try {
    const fd = openRegular(path, true);
    try {
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new UsageError(`Config ${path}: cannot read it: ${(error as Error).message}`);
  }
  return configArgv(text, path);
}

/** The options of a serve or bridge command line that names a `--config` file: the file's settings under its flags. */
export function configured(
  kind: "serve" | "bridge",
  config: ConfigSource,
  env: Readonly<Record<string, string | undefined>>,
): { options: BridgeOptions; warnings: string[] } {
  return withConfig(kind, config, readConfigArgv(config.file), env);
}
