import { describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bearerMatches, findApiToken, resolveApiToken } from "../../src/api/auth.ts";
import { isLoopback, parseCommand } from "../../src/cli/options.ts";
import { tempDir } from "../helpers.ts";

describe("bearerMatches()", () => {
  test("accepts exactly the token, in the Bearer scheme", () => {
    expect(bearerMatches("Bearer s3cret-token", "s3cret-token")).toBe(true);
    expect(bearerMatches("bearer s3cret-token", "s3cret-token")).toBe(true);
    for (const h of [undefined, "", "s3cret-token", "Bearer s3cret", "Bearer s3cret-token2", "Basic s3cret-token", "Bearer "]) {
      expect(bearerMatches(h, "s3cret-token")).toBe(false);
    }
  });
});

describe("resolveApiToken()", () => {
  test("prefers the flag, then the environment, then a generated file of mode 0600 that is reused", () => {
    const dir = tempDir("gbh-token-");
    try {
      expect(resolveApiToken(" flag-token ", { GPU_BRIDGE_API_TOKEN: "env" }, dir.path)).toEqual({
        token: "flag-token",
        source: { kind: "flag" },
      });
      expect(resolveApiToken(undefined, { GPU_BRIDGE_API_TOKEN: " env-token " }, dir.path).token).toBe("env-token");
      const first = resolveApiToken(undefined, {}, join(dir.path, "state"));
      const path = join(dir.path, "state", "api-token");
      expect(first.source).toEqual({ kind: "file", path, created: true });
      expect(first.token.length).toBeGreaterThanOrEqual(32);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readFileSync(path, "utf8").trim()).toBe(first.token);
      expect(resolveApiToken(undefined, {}, join(dir.path, "state"))).toEqual({
        token: first.token,
        source: { kind: "file", path, created: false },
      });
      writeFileSync(path, "short\n");
      expect(resolveApiToken(undefined, {}, join(dir.path, "state")).token).not.toBe("short");
    } finally {
      dir.cleanup();
    }
  });
});

describe("findApiToken()", () => {
  test("finds a token without ever creating one; a blank variable falls through to the file", () => {
    const dir = tempDir("gbh-find-");
    try {
      expect(findApiToken(undefined, {}, dir.path)).toBeNull();
      expect(findApiToken(undefined, { GPU_BRIDGE_API_TOKEN: "  " }, dir.path)).toBeNull();
      const created = resolveApiToken(undefined, {}, dir.path);
      expect(findApiToken(" ", { GPU_BRIDGE_API_TOKEN: "  " }, dir.path)).toEqual({
        token: created.token,
        source: { kind: "file", path: join(dir.path, "api-token"), created: false },
      });
    } finally {
      dir.cleanup();
    }
  });
});

describe("--listen", () => {
  const serve = (argv: string[], env = {}) => {
    const c = parseCommand(["serve", ...argv], env);
    if (c.kind !== "serve") throw new Error("expected serve");
    return c.options;
  };
  test("defaults to loopback 127.0.0.1:31338 and takes IPv6 in brackets", () => {
    expect(serve([]).listen).toEqual({ host: "127.0.0.1", port: 31338 });
    expect(serve(["--listen", "[::1]:9000"]).listen).toEqual({ host: "::1", port: 9000 });
    expect(serve(["--no-api"]).listen).toBeNull();
    expect(isLoopback("127.1.2.3")).toBe(true);
    expect(isLoopback("10.0.0.1")).toBe(false);
  });
  test("a non-loopback address needs --allow-remote and an explicit token", () => {
    expect(() => serve(["--listen", "0.0.0.0:31338"])).toThrow("is not a loopback address; pass --allow-remote");
    expect(() => serve(["--listen", "0.0.0.0:31338", "--allow-remote"])).toThrow(
      "needs an explicit --api-token, GPU_BRIDGE_API_TOKEN or --tokens FILE",
    );
    expect(serve(["--listen", "0.0.0.0:31338", "--allow-remote", "--api-token", "t0k3n-t0k3n-t0k3n"]).listen).toEqual({
      host: "0.0.0.0",
      port: 31338,
    });
    expect(serve(["--listen", "0.0.0.0:31338", "--allow-remote"], { GPU_BRIDGE_API_TOKEN: "x".repeat(16) }).listen?.host).toBe("0.0.0.0");
    expect(() => serve(["--listen", "nonsense"])).toThrow('Option --listen needs HOST:PORT (IPv6 as [::1]:PORT), got "nonsense"');
  });
  test("an API token short enough to guess is refused, without echoing it (Low)", () => {
    expect(() => serve(["--api-token", "x"])).toThrow("Option --api-token must be at least 16 characters, got 1");
    expect(() => serve(["--api-token", "short-but-15chr"])).toThrow("at least 16 characters");
    expect(() => serve([], { GPU_BRIDGE_API_TOKEN: "hunter2" })).toThrow("GPU_BRIDGE_API_TOKEN must be at least 16 characters, got 7");
    let thrown: unknown;
    try {
      serve(["--api-token", "hunter2"]);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as Error).message).toStartWith("Option --api-token must be at least 16 characters, got 7");
    expect((thrown as Error).message).not.toContain("hunter2");
    expect(serve(["--api-token", "0123456789abcdef"]).apiToken).toBe("0123456789abcdef");
  });
});
