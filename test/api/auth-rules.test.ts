/**
 * What a client and an operator see of the API token: which requests need it and what a refusal
 * says, which `Authorization` headers carry it, and where the token file lives and how a broken
 * one is reported.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bearerMatches, findApiToken, resolveApiToken, tokenPath } from "../../src/api/auth.ts";
import { createApp } from "../../src/api/app.ts";
import { bridgeFacade } from "../../src/app/bridge.ts";
import { HostState } from "../../src/host/state.ts";
import { MOCK_GPUS, mockStats } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { StateDirError } from "../../src/util/state-dir.ts";
import { memoryLogger, tempDir } from "../helpers.ts";

const TOKEN = "rules-token-0123456789";

function withApp(fn: (app: ReturnType<typeof createApp>) => Promise<void>): Promise<void> {
  const host = new HostState({
    gpus: () => MOCK_GPUS,
    runner: { run: () => Promise.reject(new Error("no job runs here")) },
    runnerKind: "cpu",
    log: memoryLogger().log,
    onChange: () => {},
  });
  let catalog = builtinCatalog();
  const app = createApp({
    token: TOKEN,
    log: memoryLogger().log,
    bridge: bridgeFacade({
      version: "9.9.9",
      hostname: "edge-01",
      gpus: () => MOCK_GPUS,
      stats: () => Promise.resolve(mockStats()),
      host,
      models: { catalog: () => catalog, setActive: (id) => void (catalog = { ...catalog, active: id }) },
    }),
  });
  return fn(app).finally(() => host.close());
}

describe("the API's token rule", () => {
  test("reads need no token: GET and HEAD answer without one", () =>
    withApp(async (app) => {
      expect((await app.request("/v1/gpus")).status).toBe(200);
      const head = await app.request("/v1/gpus", { method: "HEAD" });
      expect(head.status).toBe(200);
    }));

  test("a request without the token is refused with 401, code unauthorized, a message naming the scheme and a challenge", () =>
    withApp(async (app) => {
      const res = await app.request("/v1/leases", { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="gpu-bridge-host"');
      const body = await res.json() as { error: { code: string; message: string } };
      expect(body.error.code).toBe("unauthorized");
      expect(body.error.message).toContain("Authorization: Bearer <token>");
    }));
});

describe("which Authorization headers carry the token", () => {
  test("any case of the scheme, any run of spaces after it, trailing blanks", () => {
    for (const h of [`Bearer ${TOKEN}`, `bEARER ${TOKEN}`, `Bearer   ${TOKEN}`, `Bearer\t${TOKEN}`, `Bearer ${TOKEN}  `]) {
      expect({ h, ok: bearerMatches(h, TOKEN) }).toEqual({ h, ok: true });
    }
  });

  test("nothing before the scheme and nothing after the token", () => {
    for (const h of [`XBearer ${TOKEN}`, ` Bearer ${TOKEN}`, `Bearer ${TOKEN} extra`, `Bearer ${TOKEN}x`, `Token Bearer ${TOKEN}`]) {
      expect({ h, ok: bearerMatches(h, TOKEN) }).toEqual({ h, ok: false });
    }
  });

  test("a missing or malformed header never matches, even an empty token", () => {
    for (const h of [undefined, "", "Bearer", "Bearer "]) expect(bearerMatches(h, "")).toBe(false);
  });
});

describe("the token file", () => {
  test("lives at <state-dir>/api-token however many slashes end the folder, and ends in a newline", () => {
    expect(tokenPath("/var/lib/gpu-bridge")).toBe("/var/lib/gpu-bridge/api-token");
    expect(tokenPath("/var/lib/gpu-bridge//")).toBe("/var/lib/gpu-bridge/api-token");
    const dir = tempDir("gbh-rules-");
    try {
      const made = resolveApiToken(undefined, {}, `${dir.path}//`);
      expect(made.source).toEqual({ kind: "file", path: join(dir.path, "api-token"), created: true });
      expect(readFileSync(join(dir.path, "api-token"), "utf8")).toBe(`${made.token}\n`);
    } finally {
      dir.cleanup();
    }
  });

  test("the environment's token is reported as coming from the environment", () => {
    expect(findApiToken(undefined, { GPU_BRIDGE_API_TOKEN: "env-token-0123456789" }, "/nonexistent")).toEqual({
      token: "env-token-0123456789",
      source: { kind: "env" },
    });
  });

  test("reading it leaves no descriptor open", () => {
    const dir = tempDir("gbh-rules-");
    try {
      resolveApiToken(undefined, {}, dir.path);
      const before = readdirSync("/proc/self/fd").length;
      for (let i = 0; i < 20; i++) findApiToken(undefined, {}, dir.path);
      expect(readdirSync("/proc/self/fd").length).toBe(before);
    } finally {
      dir.cleanup();
    }
  });

  test("a token file that is a symbolic link is reported as a state-folder problem naming --state-dir", () => {
    const dir = tempDir("gbh-rules-");
    try {
      writeFileSync(join(dir.path, "elsewhere"), "linked-token-0123456789\n");
      symlinkSync(join(dir.path, "elsewhere"), join(dir.path, "api-token"));
      let caught: unknown = null;
      try {
        findApiToken(undefined, {}, dir.path);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(StateDirError);
      expect((caught as Error).message).toContain(`--state-dir ${JSON.stringify(dir.path)}`);
      expect((caught as Error).message).toContain("symbolic link");
    } finally {
      dir.cleanup();
    }
  });

  test("a state folder that cannot be made is reported as a state-folder problem, not a raw ENOTDIR", () => {
    const dir = tempDir("gbh-rules-");
    try {
      writeFileSync(join(dir.path, "file"), "");
      const state = join(dir.path, "file", "state");
      let caught: unknown = null;
      try {
        resolveApiToken(undefined, {}, state);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(StateDirError);
      expect((caught as Error).message).toContain(`--state-dir ${JSON.stringify(state)}`);
      mkdirSync(join(dir.path, "ok"));
      expect(resolveApiToken(undefined, {}, join(dir.path, "ok")).source.kind).toBe("file");
    } finally {
      dir.cleanup();
    }
  });
});
