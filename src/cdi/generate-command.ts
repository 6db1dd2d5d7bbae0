/** `cdi generate`: read the host through the chosen backend, build the spec, check it, write it. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { type Backend, DEFAULTS } from "../config/defaults.ts";
import type { Logger } from "../util/log.ts";
import { encodeSpec, type SpecFormat } from "./codec.ts";
import { replaceFileDurably } from "../util/files.ts";
import { type Generated, generateDiscrete } from "./generate.ts";
import { readHost } from "./host.ts";
import { generateCsv, readCsvFiles, skippedCsvWarnings } from "./jetson.ts";
import { mockNode } from "./mock-nodes.ts";
import { kindProblem } from "./names.ts";
import { formatProblem, validateSpec } from "./validate.ts";

/** What `cdi generate` is asked for (src/cli/cdi.ts parses it from the command line). */
export interface GenerateRequest {
  readonly backend: Backend;
  readonly sysRoot: string;
  /**
   * Where device nodes are read; undefined: DEFAULTS.cdiRoot, except with the mock backend, whose
   * GPUs' nodes come from its own table (mock-nodes.ts) so that it runs on a host without them.
   */
  readonly devRoot: string | undefined;
  readonly driverRoot: string;
  /** Jetson's CSV folder; undefined: DEFAULTS.cdiCsvDir. */
  readonly csvDir: string | undefined;
  /** undefined: DEFAULTS.cdiHookPath. */
  readonly hookPath: string | undefined;
  /** undefined: DEFAULTS.cdiKind. */
  readonly cdiKind: string | undefined;
  readonly format: SpecFormat;
  readonly output: string | undefined;
}

/** Generates the spec `c` asks for; resolves with the exit status. */
export async function generateCommand(
  c: GenerateRequest,
  env: Readonly<Record<string, string | undefined>>,
  io: { stdout: (text: string) => Promise<unknown> },
  log: Logger,
): Promise<number> {
  const kind = c.cdiKind ?? DEFAULTS.cdiKind;
  const bad = kindProblem(kind);
  if (bad !== null) throw new Error(`Cannot generate a CDI spec for --kind ${JSON.stringify(kind)}: ${bad}`);
  if (c.backend === "mock" && c.devRoot === undefined) {
    log.info("--mock: the spec holds the mock GPUs' device nodes, not this host's (--dev-root DIR reads a tree instead)");
  }
  const generated = await generate(c, kind, env, log);
  for (const w of generated.warnings) log.warn(w);
  // What we write must pass our own validator (and so the reference library's rules).
  const { problems } = validateSpec(generated.spec, { file: c.output ?? "(generated)" });
  const errors = problems.filter((p) => p.severity === "error");
  if (errors.length > 0) throw new Error(`Cannot write an invalid spec:\n${errors.map(formatProblem).join("\n")}`);
  const text = encodeSpec(generated.spec, c.format);
  if (c.output === undefined) await io.stdout(text);
  else {
    // /etc/cdi is not there on a host where nothing wrote a spec yet (nvidia-ctk makes it too).
    mkdirSync(dirname(c.output), { recursive: true, mode: 0o755 });
    replaceFileDurably(c.output, text, 0o644);
    log.info(
      `wrote ${c.output}: ${generated.spec.devices.map((d) => `${kind}=${d.name}`).join(", ")} (cdiVersion ${generated.spec.cdiVersion})`,
    );
  }
  return 0;
}

/** The spec for the host as the options describe it. */
export async function generate(
  c: Omit<GenerateRequest, "format" | "output">,
  kind: string,
  env: Readonly<Record<string, string | undefined>>,
  log: Logger,
): Promise<Generated> {
  const mockNodes = c.backend === "mock" && c.devRoot === undefined;
  const roots = {
    devRoot: c.devRoot ?? DEFAULTS.cdiRoot,
    driverRoot: c.driverRoot,
    sysRoot: c.sysRoot,
    ...(mockNodes && { statNode: mockNode }),
  };
  const hookPath = c.hookPath ?? DEFAULTS.cdiHookPath;
  const host = await readHost(c.backend, c.sysRoot, env, log);
  if (host.mode === "csv") {
    const csvDir = c.csvDir ?? DEFAULTS.cdiCsvDir;
    const csv = readCsvFiles(csvDir);
    const g = generateCsv(csv.entries, { ...roots, kind, hookPath });
    return { ...g, warnings: [...skippedCsvWarnings(csvDir, csv.skipped), ...g.warnings] };
  }
  return generateDiscrete(host.gpus, { ...roots, kind, hookPath, driverVersion: host.driverVersion });
}
