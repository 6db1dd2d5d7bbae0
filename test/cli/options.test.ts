import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommand, resolveAuthToken, UsageError } from "../../src/cli/options.ts";
import { VERSION } from "../../src/util/version.ts";
import { REPO } from "../helpers.ts";

const bridge = (argv: string[], env: Record<string, string> = {}) => {
  const c = parseCommand(argv, env);
  if (c.kind !== "bridge") throw new Error(`expected a bridge command, got ${c.kind}`);
  return c.options;
};

describe("parseCommand()", () => {
  test("applies the contract's defaults", () => {
    expect(bridge(["--list"])).toMatchObject({
      registry: undefined,
      list: true,
      publish: false,
      intervalMs: undefined,
      tcpHost: "127.0.0.1",
      tcpPort: 31337,
      authToken: "changeme",
      ticket: "",
      ackTimeoutMs: 5000,
      window: 4,
    });
  });

  test("reads every flag, in both --flag value and --flag=value forms", () => {
    const o = bridge([
      "--mock",
      "--registry",
      "/r",
      "--publish",
      "--interval-ms=250",
      "--tcp-host",
      "10.0.0.2",
      "--tcp-port=4000",
      "--auth-token",
      "tok",
      "--ticket=t-1",
      "--ack-timeout-ms",
      "900",
    ]);
    expect(o).toMatchObject({
      registry: "/r",
      publish: true,
      intervalMs: 250,
      tcpHost: "10.0.0.2",
      tcpPort: 4000,
      authToken: "tok",
      ticket: "t-1",
      ackTimeoutMs: 900,
    });
  });

  test.each([
    [["--list", "--tcp-port", "0"], "Option --tcp-port must be 1-65535, got 0"],
    [["--list", "--tcp-port", "70000"], "Option --tcp-port must be 1-65535, got 70000"],
    [["--list", "--tcp-port", "12x"], 'Option --tcp-port needs a positive integer (1-65535), got "12x"'],
    [["--publish", "--interval-ms", "-5"], 'Option --interval-ms needs a positive integer (1-2147483647), got "-5"'],
    [["--publish", "--interval-ms", "0"], "Option --interval-ms must be 1-2147483647, got 0"],
    [["--list", "--registry"], "Option --registry needs a value"],
    [["--list", "--registry", "--mock"], "Option --registry needs a value"],
    [["--list", "--registry", "  "], "Option --registry needs a non-blank value"],
    [["--list", "--frobnicate"], "Unknown option --frobnicate"],
    [["--list", "-x"], 'Unknown option "-x"'],
    [["--list", "--list"], "Option --list was given more than once"],
    [["--list=yes"], 'Option --list takes no value, got "yes"'],
    [
      ["stray", "--list"],
      'Unknown command or argument "stray" (commands: serve, stats, doctor, telemetry, models, peft, audit, vram, tokens, config, mock-console, console, cdi, completion)',
    ],
    [["mock-console", "--port", "99999"], "Option --port must be 0-65535, got 99999"],
    [["mock-console", "--list"], "Unknown option --list"],
    [["--mock"], "Nothing to do: pass --list, --publish or both (see --help)"],
  ])("refuses %j: %s", (argv, message) => {
    expect(() => parseCommand(argv, {})).toThrow(UsageError);
    expect(() => parseCommand(argv, {})).toThrow(message);
  });

  test("--help and --version win over everything else", () => {
    expect(parseCommand(["--list", "--help"], {}).kind).toBe("help");
    expect(parseCommand(["--version"], {}).kind).toBe("version");
  });

  test("warns that --interval-ms means nothing without --publish", () => {
    const c = parseCommand(["--list", "--interval-ms", "10"], {});
    expect(c.kind === "bridge" && c.warnings).toEqual(["--interval-ms has no effect without --publish"]);
  });
});

describe("parseCommand() for peft export", () => {
  test("needs --out, takes a job id by the safe-id rule, and the console flags", () => {
    const c = parseCommand(["peft", "export", "--out", "x", "--job", "job_0002", "--force", "--tcp-port", "9"], { COH_AUTH_TOKEN: "k" });
    expect(c).toEqual({
      kind: "peft-export",
      request: { out: "x", job: "job_0002", force: true, host: "127.0.0.1", port: 9, token: "k", ticket: "", ackTimeoutMs: 5000 },
    });
    expect(() => parseCommand(["peft", "export"], {})).toThrow(/--out DIR/);
    expect(() => parseCommand(["peft", "export", "--out", "x", "--job", "../etc"], {})).toThrow(/--job.*"\.\.\/etc"/);
    expect(() => parseCommand(["peft", "import"], {})).toThrow(/Unknown peft command "import"/);
    expect(parseCommand(["peft", "export", "--help"], {})).toEqual({ kind: "help", topic: "peft" });
  });
});

describe("parseCommand() for mock-console", () => {
  test("has its own flags and defaults, and the bridge's token fallbacks", () => {
    expect(parseCommand(["mock-console"], { COHSH_AUTH_TOKEN: "t" })).toEqual({
      kind: "mock-console",
      options: {
        host: "127.0.0.1",
        port: 31337,
        authToken: "t",
        ackDelayMs: 0,
        rttMs: 0,
        jitterMs: 0,
        noise: false,
        noReadback: false,
        exportMinRecords: 32,
        exportWindowS: 3600,
        logLevel: "info",
        logFormat: "text",
      },
    });
    const c = parseCommand(["mock-console", "--port", "0", "--ack-delay-ms", "100", "--noise", "--export-min-records", "5"], {});
    expect(c.kind === "mock-console" && c.options).toMatchObject({ port: 0, ackDelayMs: 100, noise: true, exportMinRecords: 5 });
    expect(() => parseCommand(["mock-console", "--export-window-s", "0"], {})).toThrow(/export-window-s/);
    expect(parseCommand(["mock-console", "--help"], {})).toEqual({ kind: "help", topic: "mock-console" });
  });
});

describe("parseCommand() for serve", () => {
  test("takes the bridge's flags except --list, and needs no action flag", () => {
    const c = parseCommand(["serve", "--mock", "--publish", "--interval-ms", "100"], {});
    expect(c.kind === "serve" && c.options).toMatchObject({ publish: true, intervalMs: 100, list: false });
    expect(parseCommand(["serve"], {}).kind).toBe("serve");
    expect(() => parseCommand(["serve", "--list"], {})).toThrow("Unknown option --list");
    expect(parseCommand(["serve", "--help"], {})).toEqual({ kind: "help", topic: "serve" });
  });
});

describe("parseCommand() for stats and the inventory flags", () => {
  test("--backend and --sys-root reach the options; --mock means --backend mock", () => {
    expect(bridge(["--list", "--backend", "jetson", "--sys-root", "/x"])).toMatchObject({ backend: "jetson", sysRoot: "/x" });
    expect(bridge(["--list", "--mock"])).toMatchObject({ backend: "mock", sysRoot: "/" });
    expect(bridge(["--list", "--backend", "mock"])).toMatchObject({ backend: "mock" });
    expect(() => parseCommand(["--list", "--backend", "rocm"], {})).toThrow(
      'Option --backend must be one of auto, nvml, cuda, jetson, mock, got "rocm"',
    );
    expect(parseCommand(["stats", "--json", "--mock"], {})).toEqual({
      kind: "stats",
      options: { backend: "mock", sysRoot: "/", json: true, logLevel: "info", logFormat: "text" },
    });
  });
});

describe("parseCommand() for the tools", () => {
  test("telemetry push/export and models import take their flags and refuse what is missing", () => {
    expect(parseCommand(["telemetry", "push", "f.ndjson"], { XDG_STATE_HOME: "/s" })).toEqual({
      kind: "telemetry-push",
      file: "f.ndjson",
      url: "http://127.0.0.1:31338",
      apiToken: undefined,
      stateDir: "/s/gpu-bridge-host",
    });
    expect(parseCommand(["telemetry", "export", "--out", "b.cbor", "--since", "2026-01-01T00:00:00Z"], { HOME: "/h" })).toMatchObject({
      kind: "telemetry-export",
      out: "b.cbor",
      sinceMs: Date.parse("2026-01-01T00:00:00Z"),
      stateDir: "/h/.local/state/gpu-bridge-host",
    });
    expect(() => parseCommand(["telemetry", "export"], {})).toThrow("telemetry export needs --out FILE");
    expect(() => parseCommand(["telemetry", "export", "--out", "x", "--since", "soon"], {})).toThrow("Option --since needs");
    expect(() => parseCommand(["telemetry", "pull"], {})).toThrow('Unknown telemetry command "pull" (push, export)');
    expect(parseCommand(["models", "import", "b", "--id", "m", "--registry", "r", "--approval", "approved"], {})).toMatchObject({
      kind: "models-import",
      bundle: "b",
      id: "m",
      registry: "r",
      approval: "approved",
    });
    expect(() => parseCommand(["models", "import", "b", "--registry", "r"], {})).toThrow("models import needs --id ID");
    expect(() => parseCommand(["serve", "--device-id", "a b"], {})).toThrow("Option --device-id must be 1-64 characters");
  });
});

describe("resolveAuthToken()", () => {
  test("prefers the flag, then COH_AUTH_TOKEN, then COHSH_AUTH_TOKEN, then changeme", () => {
    const env = { COH_AUTH_TOKEN: " coh ", COHSH_AUTH_TOKEN: " cohsh " };
    expect(resolveAuthToken("flag", env)).toBe("flag");
    expect(resolveAuthToken(undefined, env)).toBe("coh");
    expect(resolveAuthToken("   ", env)).toBe("coh");
    expect(resolveAuthToken("", { COH_AUTH_TOKEN: "  ", COHSH_AUTH_TOKEN: " cohsh " })).toBe("cohsh");
    expect(resolveAuthToken(undefined, { COH_AUTH_TOKEN: "\t", COHSH_AUTH_TOKEN: "" })).toBe("changeme");
    expect(resolveAuthToken(undefined, {})).toBe("changeme");
  });
});

test("VERSION matches package.json", () => {
  expect(VERSION).toBe(JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).version);
});

describe("the flag tables and the help generated from them", () => {
  test("every flag the bridge accepts has one help line in the main help, and nothing else does", async () => {
    const { bridgeFlags, mockConsoleFlags } = await import("../../src/cli/options.ts");
    const BRIDGE_FLAGS = bridgeFlags();
    const MOCK_CONSOLE_FLAGS = mockConsoleFlags();
    const { FLAG_HELP, MOCK_CONSOLE_HELP, SECTIONS, USAGE } = await import("../../src/cli/usage.ts");
    const listed = SECTIONS.flatMap(([, flags]) => flags);
    expect([...listed].sort()).toEqual(Object.keys(BRIDGE_FLAGS).sort());
    expect(Object.keys(FLAG_HELP).sort()).toEqual(Object.keys(BRIDGE_FLAGS).sort());
    expect(Object.keys(MOCK_CONSOLE_HELP).sort()).toEqual(Object.keys(MOCK_CONSOLE_FLAGS).sort());
    for (const flag of listed) expect(USAGE).toMatch(new RegExp(`^  --${flag}\\b`, "m"));
  });

  test("the defaults the parser applies are the ones the help prints", async () => {
    const { DEFAULTS } = await import("../../src/config/defaults.ts");
    const { USAGE } = await import("../../src/cli/usage.ts");
    const c = parseCommand(["--publish"], {});
    const o = c.kind === "bridge" ? c.options : undefined;
    expect(o).toMatchObject({
      tcpHost: DEFAULTS.tcpHost,
      tcpPort: DEFAULTS.tcpPort,
      ackTimeoutMs: DEFAULTS.ackTimeoutMs,
      maxStreamsPerGpu: DEFAULTS.maxStreamsPerGpu,
      spoolMaxBytes: DEFAULTS.spoolMaxMb * 1024 * 1024,
      queenSegmentBytes: DEFAULTS.queenSegmentKb * 1024,
      logLevel: DEFAULTS.logLevel,
    });
    expect(USAGE).toContain(`console port (default ${DEFAULTS.tcpPort})`);
    expect(USAGE).toContain(`each console ack (default ${DEFAULTS.ackTimeoutMs})`);
    expect(USAGE).toContain(`(default ${DEFAULTS.maxStreamsPerGpu})`);
  });
});

describe("cdi", () => {
  test("generate applies the defaults from defaults.ts; an --output ending in .yaml picks yaml", async () => {
    const { DEFAULTS } = await import("../../src/config/defaults.ts");
    expect(parseCommand(["cdi", "generate"], {})).toEqual({
      kind: "cdi-generate",
      backend: DEFAULTS.backend,
      sysRoot: DEFAULTS.sysRoot,
      devRoot: undefined, // DEFAULTS.cdiRoot, or the mock GPUs' own nodes with --mock (src/cdi/generate-command.ts)
      driverRoot: DEFAULTS.cdiRoot,
      csvDir: undefined,
      hookPath: undefined,
      cdiKind: undefined,
      format: DEFAULTS.cdiFormat,
      output: undefined,
    });
    expect(parseCommand(["cdi", "generate", "--output", "/etc/cdi/nvidia.yaml"], {})).toMatchObject({ format: "yaml" });
    expect(parseCommand(["cdi", "generate", "--mock"], {})).toMatchObject({ backend: "mock" });
    expect(() => parseCommand(["cdi", "generate", "--mock", "--backend", "nvml"], {})).toThrow(
      "Option --mock conflicts with --backend nvml",
    );
  });

  test("apply and list take --spec-dir more than once, in order", () => {
    expect(parseCommand(["cdi", "apply", "--spec-dir", "/a", "--cache-dir", "/c", "--spec-dir=/b", "x.com/y=0"], {})).toEqual({
      kind: "cdi-apply",
      specDirs: ["/a", "/b"],
      input: "-",
      output: undefined,
      devices: ["x.com/y=0"],
      cacheDir: "/c",
    });
    expect(parseCommand(["cdi", "list", "--no-cache"], {})).toEqual({ kind: "cdi-list", specDirs: undefined, cacheDir: undefined });
    expect(() => parseCommand(["cdi", "list", "--spec-dir"], {})).toThrow("Option --spec-dir needs a value");
  });

  test("the validated-spec cache: --cache-dir, --no-cache (not both), else /run for root, the user's runtime folder, or none", async () => {
    const { defaultCacheDir } = await import("../../src/cli/cdi.ts");
    expect(parseCommand(["cdi", "apply", "--cache-dir", "/c", "x.com/y=0"], {})).toMatchObject({ cacheDir: "/c" });
    expect(parseCommand(["cdi", "apply", "--no-cache", "x.com/y=0"], { XDG_RUNTIME_DIR: "/run/user/1" })).toMatchObject({
      cacheDir: undefined,
    });
    expect(parseCommand(["cdi", "list", "--no-cache"], {})).toMatchObject({ cacheDir: undefined });
    expect(() => parseCommand(["cdi", "apply", "--no-cache", "--cache-dir", "/c", "x.com/y=0"], {})).toThrow(
      "Option --no-cache conflicts with --cache-dir",
    );
    expect(() => parseCommand(["cdi", "list", "--cache-dir", " "], {})).toThrow("Option --cache-dir needs a non-blank value");
    expect(defaultCacheDir({ XDG_RUNTIME_DIR: "/run/user/1000/" }, 1000)).toBe("/run/user/1000/gpu-bridge-host/cdi-cache");
    expect(defaultCacheDir({}, 0)).toBe("/run/gpu-bridge-host/cdi-cache");
    // Root never takes a runtime folder: `sudo -E` carries the invoking user's over.
    expect(defaultCacheDir({ XDG_RUNTIME_DIR: "/run/user/1000" }, 0)).toBe("/run/gpu-bridge-host/cdi-cache");
    expect(defaultCacheDir({}, 1000)).toBeUndefined();
    // Another user's runtime folder (sudo -E), or one not made by logind, is not taken.
    expect(defaultCacheDir({ XDG_RUNTIME_DIR: "/run/user/1000" }, 1001)).toBeUndefined();
    expect(defaultCacheDir({ XDG_RUNTIME_DIR: "/home/u/.run" }, 1000)).toBeUndefined();
    expect(defaultCacheDir({ XDG_RUNTIME_DIR: "/run/user/1000" }, undefined)).toBeUndefined(); // no uids (Windows): no cache
    expect(defaultCacheDir({ XDG_RUNTIME_DIR: "run/user/1000" }, 1000)).toBeUndefined();
    expect(defaultCacheDir({ XDG_RUNTIME_DIR: " " }, 1000)).toBeUndefined();
  });

  test("--help, and no subcommand, is cdi's help; an unknown subcommand is refused naming it", () => {
    expect(parseCommand(["cdi"], {})).toEqual({ kind: "help", topic: "cdi" });
    expect(parseCommand(["cdi", "apply", "--help"], {})).toEqual({ kind: "help", topic: "cdi" });
    expect(() => parseCommand(["cdi", "frobnicate"], {})).toThrow('Unknown cdi command "frobnicate" (generate, validate, apply, list)');
  });

  test("every flag of every cdi subcommand has one help line in cdi's help, with the defaults the code uses", async () => {
    const { cdiFlags } = await import("../../src/cli/cdi.ts");
    const { DEFAULTS } = await import("../../src/config/defaults.ts");
    const { CDI_HELP, CDI_USAGE } = await import("../../src/cli/usage.ts");
    const tables = cdiFlags();
    for (const sub of ["generate", "validate", "apply", "list"] as const) {
      expect(Object.keys(CDI_HELP[sub]).sort()).toEqual(Object.keys(tables[sub]).sort());
      for (const flag of Object.keys(tables[sub]).filter((f) => f !== "help")) {
        expect(CDI_USAGE).toMatch(new RegExp(`^      --${flag}\\b`, "m"));
      }
    }
    for (const d of [DEFAULTS.cdiKind, DEFAULTS.cdiHookPath, DEFAULTS.cdiCsvDir, ...DEFAULTS.cdiSpecDirs]) expect(CDI_USAGE).toContain(d);
  });
});
