/**
 * `--config FILE` and `config check FILE`: the file's settings are serve's flags, checked with the
 * flags' own messages; the command line overrides the file; `GET /v1/config` shows the result to
 * the token's holder with the secrets masked.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { configArgv, configured } from "../../src/cli/config-file.ts";
import { parseCommand, UsageError } from "../../src/cli/options.ts";
import { maskedSettings } from "../../src/app/daemon.ts";
import { main } from "../../src/main.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { memoryStdio, tempDir } from "../helpers.ts";
import { hostApp } from "../api/tenancy-helpers.ts";

const flagError = (argv: string[]) => {
  try {
    parseCommand(["serve", ...argv], {});
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("accepted");
};
/** `serve` with `argv` after a config file holding `text`: the options, or the refusal's message. */
function serveWith(text: string, argv: string[] = []) {
  const dir = tempDir("gbh-config-");
  try {
    const file = join(dir.path, "bridge.toml");
    writeFileSync(file, text);
    const c = parseCommand(["serve", "--config", file, ...argv], {});
    if (c.kind !== "serve" || c.config === undefined) throw new Error("expected serve with a config");
    try {
      return { file, ...configured("serve", c.config, {}).options };
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      return { file, error: (error as Error).message };
    }
  } finally {
    dir.cleanup();
  }
}

describe("--config", () => {
  test("the file's settings apply, the command line's override them, the rest keep their defaults", () => {
    const o = serveWith('max-streams-per-gpu = 8\njob-results-mb = 3\nmock = true\nlisten = "127.0.0.1:41000"\n', [
      "--max-streams-per-gpu",
      "4",
    ]);
    expect(o).toMatchObject({
      maxStreamsPerGpu: 4,
      jobResultsBytes: 3 * 1048576,
      backend: "mock",
      listen: { host: "127.0.0.1", port: 41000 },
      tcpPort: DEFAULTS.tcpPort,
      configFile: o.file,
    });
  });

  test("a bad value is refused with the flag's own message, naming the file", () => {
    for (
      const [setting, flag] of [
        ["max-streams-per-gpu = 0", ["--max-streams-per-gpu", "0"]],
        ['runner = "gpu"', ["--runner", "gpu"]],
        ["job-results-age-s = 1.5", ["--job-results-age-s", "1.5"]],
        ['listen = "0.0.0.0:1"', ["--listen", "0.0.0.0:1"]],
      ] as const
    ) {
      const o = serveWith(`${setting}\n`);
      expect(o).toMatchObject({ error: `Config ${o.file}: ${flagError([...flag])}` });
    }
  });

  test("a rule across flags that the file settles is taken from it: a remote listen with the file's tokens file", () => {
    const o = serveWith('listen = "0.0.0.0:31338"\nallow-remote = true\ntokens = "/etc/gpu-bridge-host/tokens.toml"\n');
    expect(o).toMatchObject({ listen: { host: "0.0.0.0", port: 31338 }, tokensFile: "/etc/gpu-bridge-host/tokens.toml" });
  });

  test("what a file cannot hold is refused naming the key", () => {
    expect(() => configArgv("list = true", "f.toml")).toThrow('Config f.toml: unknown setting "list"');
    expect(() => configArgv("max-streams = 3", "f.toml")).toThrow('Config f.toml: unknown setting "max-streams"');
    expect(() => configArgv('mock = "yes"', "f.toml")).toThrow('Config f.toml: mock must be true or false, got "yes"');
    expect(() => configArgv("listen = 31338", "f.toml")).toThrow("Config f.toml: listen must be a string, got 31338");
    expect(() => configArgv("max-streams-per-gpu = [1]", "f.toml")).toThrow("Config f.toml: max-streams-per-gpu must be an integer");
    expect(() => configArgv("x = ", "f.toml")).toThrow("Config f.toml: it is not TOML");
    expect(configArgv("mock = false\npublish = true", "f.toml")).toEqual(["--publish"]);
  });
});

describe("config check", () => {
  test("a good file: exit 0 and what it sets; a bad one: exit 2 and serve's message", async () => {
    const dir = tempDir("gbh-config-check-");
    try {
      const good = join(dir.path, "good.toml");
      writeFileSync(good, 'max-streams-per-gpu = 8\ntokens = "/etc/t.toml"\n');
      let io = memoryStdio();
      expect(await main(["config", "check", good], {}, io.io)).toBe(0);
      expect(io.out.join("")).toBe(`${good}: ok, 2 settings:\n  max-streams-per-gpu = 8\n  tokens = /etc/t.toml\n`);
      const bad = join(dir.path, "bad.toml");
      writeFileSync(bad, "max-streams-per-gpu = 0\n");
      io = memoryStdio();
      expect(await main(["config", "check", bad], {}, io.io)).toBe(2);
      expect(io.err.join("")).toContain(`Config ${bad}: ${flagError(["--max-streams-per-gpu", "0"])}`);
    } finally {
      dir.cleanup();
    }
  });
});

describe("GET /v1/config", () => {
  test("the effective settings with the tokens masked, and only for the token's holder", async () => {
    const c = parseCommand(["serve", "--mock", "--api-token", "a-secret-token-0123456789", "--auth-token", "console-secret"], {});
    if (c.kind !== "serve") throw new Error("expected serve");
    const { app, host } = hostApp({ token: "a-secret-token-0123456789", settings: maskedSettings(c.options) });
    try {
      expect((await app.request("/v1/config")).status).toBe(401);
      const res = await app.request("/v1/config", { headers: { Authorization: "Bearer a-secret-token-0123456789" } });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).not.toContain("a-secret-token");
      expect(text).not.toContain("console-secret");
      expect(JSON.parse(text)).toMatchObject({
        backend: "mock",
        apiToken: "(hidden)",
        authToken: "(hidden)",
        maxStreamsPerGpu: DEFAULTS.maxStreamsPerGpu,
      });
    } finally {
      host.close();
    }
  });
});
