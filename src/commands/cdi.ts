/**
 * `gpu-bridge-host cdi generate|validate|apply|list`. Loaded only for a `cdi` command line, so
 * none of it is on the `--list` start-up path.
 */
// What apply (on every container's start) needs is imported statically: one chunk load instead
// of a chain of awaited imports. Nothing here reaches node:fs, node:path or the YAML library.
import { applyEdits, needsAnyHostStat } from "../cdi/apply.ts";
import { parseOci } from "../cdi/oci.ts";
import { gatherEdits, loadSpecDirs, searchedText } from "../cdi/registry.ts";
import { nativeYaml, type YamlParse } from "../cdi/spec-format.ts";
import { loadSpecFs, specFsNow } from "../cdi/spec-fs.ts";
import { SpecCache } from "../cdi/spec-cache.ts";
import type { CdiCommand } from "../cli/options.ts";
import { DEFAULTS } from "../config/defaults.ts";
import type { Logger } from "../util/log.ts";
import type { CommandIo } from "./types.ts";

/**
 * Runs a parsed `cdi` command; resolves with the exit status (errors go to the entry point).
 * One function per subcommand: on a cold start a function costs its size the first time it
 * runs, and `cdi apply` (every container's start) should pay for its own code alone.
 */
export function run(command: CdiCommand, io: CommandIo): Promise<number> {
  // The logger is made when something is logged: apply usually logs nothing.
  let log: Logger | undefined;
  const logger = () => (log ??= io.logger("info", "cdi"));
  switch (command.kind) {
    case "cdi-apply":
      return apply(command, io, logger);
    case "cdi-list":
      return list(command, io, logger);
    case "cdi-validate":
      return validate(command, io);
    case "cdi-generate":
      return generate(command, io, logger);
  }
}

type Of<K extends CdiCommand["kind"]> = Extract<CdiCommand, { kind: K }>;

/** The runtime's native YAML parser where there is one (apply and list are hot), else the library's. */
async function yamlParser(): Promise<YamlParse> {
  return nativeYaml() ?? (await import("../cdi/codec.ts")).libraryYaml;
}

/** The hot path (every container's start): no node:fs, no YAML library, unless needed. */
async function apply(c: Of<"cdi-apply">, io: CommandIo, log: () => Logger): Promise<number> {
  const fs = specFsNow() ?? (await loadSpecFs());
  // The config.json is read while the folders are: Bun reads files on its thread pool, whose
  // start then overlaps the listing. Marked handled now, so that a failed read waits for its await.
  const input = c.input === "-" ? io.stdin() : fs.read(c.input, DEFAULTS.cdiConfigMaxBytes);
  input.catch(() => {});
  const cache = SpecCache.open(c.cacheDir);
  const registry = await loadSpecDirs(c.specDirs ?? DEFAULTS.cdiSpecDirs, await yamlParser(), fs, cache);
  const oci = await parseOci(await input, c.input === "-" ? "stdin" : c.input);
  let out;
  try {
    const edits = gatherEdits(registry, c.devices);
    const stat = needsAnyHostStat(edits.deviceNodes ?? []) ? (await import("../cdi/devnode.ts")).statNode : () => null;
    out = applyEdits(oci, edits, stat);
  } catch (error) {
    if (error instanceof RangeError) {
      // Copying the config.json recursed past the stack: say which input and why.
      throw new Error(
        `Cannot apply CDI edits to ${c.input === "-" ? "stdin" : c.input}: its JSON is nested too deeply (${error.message})`,
        {
          cause: error,
        },
      );
    }
    // Only now are the folders' problems worth showing: they may be why a device is missing.
    for (const e of registry.errors) log().warn(e);
    throw error;
  }
  const text = JSON.stringify(out) + "\n";
  if (c.output === undefined) await io.stdout(text);
  else (await import("../util/files.ts")).replaceFileDurably(c.output, text, 0o644);
  // After the answer: a miss's write (node:fs loaded) does not delay the container.
  await cache?.flush();
  return 0;
}

async function list(c: Of<"cdi-list">, io: CommandIo, log: () => Logger): Promise<number> {
  const cache = SpecCache.open(c.cacheDir);
  const registry = await loadSpecDirs(c.specDirs ?? DEFAULTS.cdiSpecDirs, await yamlParser(), undefined, cache);
  await cache?.flush();
  for (const e of registry.errors) log().warn(e);
  const names = [...registry.devices.keys()].sort();
  // Nothing on stdout and exit 0 when nothing resolves (a script tests for empty output), but
  // stderr says where the folders were, so an empty answer is never a silent one.
  if (names.length === 0) {
    log().warn(
      `No CDI device found: searched ${searchedText(registry.searched)}. ` +
        "Write a spec there (gpu-bridge-host cdi generate --output /etc/cdi/nvidia.yaml) or name its folder with --spec-dir DIR",
    );
  }
  await io.stdout(names.map((n) => `${n}\n`).join(""));
  return 0;
}

async function validate(c: Of<"cdi-validate">, io: CommandIo): Promise<number> {
  const { validateFiles } = await import("../cdi/validate-files.ts");
  const { lines, ok } = validateFiles(c.files, { consumerVersion: c.consumerVersion, hostCheck: c.hostCheck });
  await io.stdout(lines.join("\n") + "\n");
  return ok ? 0 : 1;
}

async function generate(c: Of<"cdi-generate">, io: CommandIo, log: () => Logger): Promise<number> {
  const { generateCommand } = await import("../cdi/generate-command.ts");
  return await generateCommand(c, process.env, io, log());
}
