/**
 * `gpu-bridge-host cdi generate|validate|apply|list`. Loaded only for a `cdi` command line, so
 * none of it is on the `--list` start-up path.
 */
// What apply (on every container's start) needs is imported statically: one chunk load instead
// of a chain of awaited imports. Nothing here reaches node:fs, node:path or the YAML library.
import { applyEdits, needsAnyHostStat } from "../cdi/apply.ts";
import { parseOci } from "../cdi/oci.ts";
import { gatherEdits, loadSpecDirs } from "../cdi/registry.ts";
import { nativeYaml, type YamlParse } from "../cdi/spec-format.ts";
import { bunSpecFsNow, loadSpecFs } from "../cdi/spec-fs.ts";
import type { CdiCommand } from "../cli/options.ts";
import { DEFAULTS } from "../cli/defaults.ts";
import type { Logger } from "../util/log.ts";
import type { CommandIo } from "./types.ts";

/** Runs a parsed `cdi` command; resolves with the exit status (errors go to the entry point). */
export function run(command: CdiCommand, io: CommandIo): Promise<number> {
  // The logger is made when something is logged: apply usually logs nothing.
  let log: Logger | undefined;
  return runCdi(command, io, () => (log ??= io.logger("info", "cdi")));
}

/** The runtime's native YAML parser where there is one (apply and list are hot), else the library's. */
async function libraryYaml(): Promise<YamlParse> {
  return (await import("../cdi/codec.ts")).libraryYaml;
}

async function runCdi(c: CdiCommand, io: CommandIo, log: () => Logger): Promise<number> {
  switch (c.kind) {
    case "cdi-apply": {
      // The hot path (every container's start): no node:fs, no YAML library, unless needed, and
      // no await where Bun has the answer at hand.
      const fs = bunSpecFsNow() ?? (await loadSpecFs());
      const registry = await loadSpecDirs(c.specDirs ?? DEFAULTS.cdiSpecDirs, nativeYaml() ?? (await libraryYaml()), fs);
      const oci = await parseOci(c.input === "-" ? await io.stdin() : await fs.read(c.input), c.input === "-" ? "stdin" : c.input);
      let out;
      try {
        const edits = gatherEdits(registry, c.devices);
        const stat = needsAnyHostStat(edits.deviceNodes ?? []) ? (await import("../cdi/devnode.ts")).statNode : () => null;
        out = applyEdits(oci, edits, stat);
      } catch (error) {
        // Only now are the folders' problems worth showing: they may be why a device is missing.
        for (const e of registry.errors) log().warn(e);
        throw error;
      }
      const text = JSON.stringify(out) + "\n";
      if (c.output === undefined) await io.stdout(text);
      else (await import("../cdi/files.ts")).writeFileAtomic(c.output, text);
      return 0;
    }
    case "cdi-list": {
      const registry = await loadSpecDirs(c.specDirs ?? DEFAULTS.cdiSpecDirs, nativeYaml() ?? (await libraryYaml()));
      for (const e of registry.errors) log().warn(e);
      const names = [...registry.devices.keys()].sort();
      await io.stdout(names.map((n) => `${n}\n`).join(""));
      return 0;
    }
    case "cdi-validate": {
      const { validateFiles } = await import("../cdi/validate-files.ts");
      const { lines, ok } = validateFiles(c.files, { consumerVersion: c.consumerVersion, hostCheck: c.hostCheck });
      await io.stdout(lines.join("\n") + "\n");
      return ok ? 0 : 1;
    }
    case "cdi-generate": {
      const { generateCommand } = await import("../cdi/generate-command.ts");
      return await generateCommand(c, process.env, io, log());
    }
  }
}
