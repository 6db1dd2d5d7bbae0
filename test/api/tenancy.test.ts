/**
 * Principals (src/api/tokens-file.ts, principals.ts, scope.ts) without a socket: the tokens
 * file's rules and messages, worker patterns, which token is whose, what a refusal says, what an
 * operator can see of another's leases, and who the record of changes names in both modes.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PrincipalGuard } from "../../src/api/principals.ts";
import { addPrincipal, newToken, parseTokensFile, tokenHash, TokensFileError, workerMatches } from "../../src/api/tokens-file.ts";
import { ChangeRecord } from "../../src/changes/record.ts";
import { EventHub } from "../../src/changes/stream.ts";
import { feedHostChanges } from "../../src/app/changes.ts";
import { HostState } from "../../src/host/state.ts";
import { LeaseJournal } from "../../src/lease/journal.ts";
import { main } from "../../src/main.ts";
import { FakeClock, memoryLogger, memoryStdio, tempDir } from "../helpers.ts";
import { hostApp } from "./tenancy-helpers.ts";

const HASH = "a".repeat(64);
const parseError = (text: string) => {
  try {
    parseTokensFile(text, "/etc/t.toml");
  } catch (error) {
    expect(error).toBeInstanceOf(TokensFileError);
    return (error as Error).message;
  }
  throw new Error("parsed");
};

describe("the tokens file", () => {
  test("a good file: roles, patterns, quotas and the hash as bytes", () => {
    const [p] = parseTokensFile(
      `[principals.team-a]\nrole = "operator"\nworkers = ["a-*"]\ntoken_sha256 = "${HASH}"\nquotas = { leases = 2, mem_mb = 0 }\n`,
      "t",
    );
    expect(p).toMatchObject({ name: "team-a", role: "operator", workers: ["a-*"], quotas: { leases: 2, mem_mb: 0 } });
    expect(p!.hash.toString("hex")).toBe(HASH);
  });

  test("each mistake is refused naming the file and the field", () => {
    expect(parseError("[principals")).toStartWith("Cannot use the tokens file /etc/t.toml: it is not TOML");
    expect(parseError(`[principals.x]\nrole = "root"\ntoken_sha256 = "${HASH}"`)).toBe(
      "Cannot use the tokens file /etc/t.toml: principals.x.role: role must be one of reader, operator, admin",
    );
    expect(parseError(`[principals.x]\nrole = "reader"\ntoken_sha256 = "abc"`)).toContain(
      "principals.x.token_sha256: token_sha256 must be 64 lower-case hex digits",
    );
    expect(parseError(`[principals.x]\nrole = "operator"\ntoken_sha256 = "${HASH}"`)).toContain(
      "principals.x.workers: an operator needs at least one worker-id pattern",
    );
    expect(parseError(`[principals.x]\nrole = "admin"\nworkers = ["a"]\ntoken_sha256 = "${HASH}"`)).toContain(
      "principals.x.workers: only an operator has worker patterns",
    );
    expect(parseError(`[principals.x]\nrole = "reader"\ntoken_sha256 = "${HASH}"\nquotas = { leases = -1 }`)).toContain(
      "principals.x.quotas.leases: quotas.leases must be a non-negative integer",
    );
    expect(parseError(`[principals.x]\nrole = "reader"\ntoken_sha256 = "${HASH}"\nquotas = { lease = 1 }`)).toContain(
      'principals.x.quotas.lease: unknown field "quotas.lease"',
    );
    expect(
      parseError(`[principals.x]\nrole = "reader"\ntoken_sha256 = "${HASH}"\n[principals.y]\nrole = "reader"\ntoken_sha256 = "${HASH}"`),
    )
      .toContain('principals.y.token_sha256: the same token as principal "x"');
    expect(parseError(`[principals."api-token"]\nrole = "reader"\ntoken_sha256 = "${HASH}"`)).toContain(
      "the name is the single API token's",
    );
  });

  test("tokens add: the token is printed once, the file keeps its hash and its comments, mode 0600; a name twice is refused", () => {
    const dir = tempDir("gbh-tokens-");
    try {
      const file = join(dir.path, "t.toml");
      writeFileSync(file, "# fleet tokens\n");
      const { token } = addPrincipal(file, "ci", "reader", []);
      expect(token).toMatch(/^gbh_[A-Za-z0-9_-]{43}$/);
      const text = readFileSync(file, "utf8");
      expect(text).toStartWith("# fleet tokens\n");
      expect(text).not.toContain(token);
      expect(parseTokensFile(text, file)[0]!.hash.toString("hex")).toBe(tokenHash(token));
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(() => addPrincipal(file, "ci", "admin", [])).toThrow('Cannot add principal "ci"');
      expect(readFileSync(file, "utf8")).toBe(text);
    } finally {
      dir.cleanup();
    }
  });
});

describe("gpu-bridge-host tokens add", () => {
  test("prints the token once on stdout and nothing else; usage mistakes exit 2 naming the flag", async () => {
    const dir = tempDir("gbh-tokens-cli-");
    try {
      const file = join(dir.path, "t.toml");
      const io = memoryStdio();
      expect(await main(["tokens", "add", "team-a", "--role", "operator", "--workers", "a-*, ci-a", "--file", file], {}, io.io)).toBe(0);
      const token = io.out.join("").trim();
      const [p] = parseTokensFile(readFileSync(file, "utf8"), file);
      expect(p).toMatchObject({ name: "team-a", workers: ["a-*", "ci-a"] });
      expect(p!.hash.toString("hex")).toBe(tokenHash(token));
      expect(io.err.join("")).not.toContain(token);
      for (
        const [argv, message] of [
          [["tokens", "add", "x", "--file", file], "tokens add needs --role reader|operator|admin"],
          [["tokens", "add", "x", "--role", "operator", "--file", file], "an operator needs --workers"],
          [["tokens", "add", "x", "--role", "admin", "--workers", "a", "--file", file], "only an operator takes --workers"],
          [["tokens", "add", "x", "--role", "boss", "--file", file], 'Option --role must be one of reader, operator, admin, got "boss"'],
          [["tokens", "add", "x y", "--role", "reader", "--file", file], "tokens add: NAME must be"],
        ] as const
      ) {
        const bad = memoryStdio();
        expect(await main([...argv], {}, bad.io)).toBe(2);
        expect(bad.err.join("")).toContain(message);
      }
    } finally {
      dir.cleanup();
    }
  });
});

describe("worker patterns", () => {
  test("* matches any run, the rest literally", () => {
    const cases: [string, string, boolean][] = [
      ["a-*", "a-1", true],
      ["a-*", "a-", true],
      ["a-*", "b-1", false],
      ["a-*", "xa-1", false],
      ["*-gpu", "vm7-gpu", true],
      ["*-gpu", "vm7-gpux", false],
      ["a*b*c", "aXbYc", true],
      ["a*b*c", "acb", false],
      ["a*a", "a", false],
      ["exact", "exact", true],
      ["exact", "exact2", false],
      ["a.b", "aXb", false],
    ];
    for (const [p, w, want] of cases) expect({ p, w, got: workerMatches(p, w) }).toEqual({ p, w, got: want });
  });
});

const tokens = { reader: newToken(), a: newToken(), b: newToken(), admin: newToken(), any: newToken() };
let host: HostState | null = null;
afterEach(() => host?.close());

function build(principals: boolean) {
  const dir = tempDir("gbh-tenancy-");
  const file = join(dir.path, "t.toml");
  writeFileSync(
    file,
    [
      ["reader", "reader", tokens.reader, null],
      ["team-a", "operator", tokens.a, "a-*"],
      ["team-b", "operator", tokens.b, "b-*"],
      ["root", "admin", tokens.admin, null],
      ["team-any", "operator", tokens.any, "*"],
    ].map(([name, role, token, w]) =>
      `[principals.${name}]\nrole = "${role}"\n${w === null ? "" : `workers = ["${w}"]\n`}token_sha256 = "${tokenHash(token!)}"\n`
    ).join(""),
  );
  const clock = new FakeClock();
  const { log } = memoryLogger();
  const record = new ChangeRecord({ clock, log, keep: 100 });
  const built = hostApp({
    token: "single-token-0123456789",
    ...(principals && { principals: new PrincipalGuard(file) }),
    events: new EventHub({ record, clock, maxQueued: 100, heartbeatMs: 60000 }),
  });
  host = built.host;
  feedHostChanges(record, built.host);
  const app = built.app;
  dir.cleanup();
  return { app, record, host: built.host };
}
const as = (token: string, init: RequestInit = {}) => ({ ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } });
const grant = (worker: string) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ gpu_id: "GPU-0", worker_id: worker, mem_mb: 16, streams: 1, ttl_s: 60, priority: 1 }),
});
const error = async (res: Response) => ((await res.json()) as { error: { code: string; message: string; field?: string } }).error;

describe("with a tokens file", () => {
  test("every route but /healthz needs a token, unknown paths included", async () => {
    const { app } = build(true);
    expect((await app.request("/healthz")).status).toBe(200);
    expect((await app.request("/v1/gpus")).status).toBe(401);
    expect((await app.request("/v1/nothing")).status).toBe(401);
    expect((await app.request("/v1/nothing", as(tokens.reader))).status).toBe(404);
    expect((await app.request("/v1/gpus", as("gbh_not-a-token-of-the-file"))).status).toBe(401);
    const e = await error(await app.request("/v1/gpus"));
    expect(e.message).toContain("a token of the bridge's tokens file");
  });

  test("a refusal says which role, or which worker patterns, were missing", async () => {
    const { app } = build(true);
    expect(await error(await app.request("/v1/leases", as(tokens.reader, grant("a-1"))))).toEqual({
      code: "forbidden",
      field: "role",
      message: 'POST /v1/leases needs the operator role or admin; principal "reader" is a reader',
    });
    expect(await error(await app.request("/v1/gpus/GPU-0/ctl", as(tokens.a, { method: "POST", body: "RESET" })))).toMatchObject({
      message: 'POST /v1/gpus/:id/ctl needs the admin role; principal "team-a" is an operator',
    });
    expect(await error(await app.request("/v1/leases", as(tokens.a, grant("b-1"))))).toEqual({
      code: "forbidden",
      field: "worker_id",
      message: 'Principal "team-a" may not act for worker "b-1": its worker patterns are "a-*"',
    });
  });

  test("an operator sees only its own leases and their changes; readers and admins see all", async () => {
    const { app, record } = build(true);
    const mine = (await (await app.request("/v1/leases", as(tokens.a, grant("a-1")))).json()) as { id: string };
    const theirs = (await (await app.request("/v1/leases", as(tokens.b, grant("b-1")))).json()) as { id: string };
    const ids = async (token: string) => ((await (await app.request("/v1/leases", as(token))).json()) as { id: string }[]).map((l) => l.id);
    expect(await ids(tokens.a)).toEqual([mine.id]);
    expect(await ids(tokens.b)).toEqual([theirs.id]);
    expect((await ids(tokens.reader)).sort()).toEqual([mine.id, theirs.id].sort());
    expect((await ids(tokens.admin)).sort()).toEqual([mine.id, theirs.id].sort());
    // Another's lease is unknown to it, whichever way it asks.
    expect((await app.request(`/v1/leases/${theirs.id}`, as(tokens.a))).status).toBe(404);
    expect((await app.request(`/v1/leases/${theirs.id}`, as(tokens.a, { method: "DELETE" }))).status).toBe(404);
    expect((await app.request(`/v1/leases/${theirs.id}/renew`, as(tokens.a, { method: "POST" }))).status).toBe(404);
    // Its event stream leaves out the other's lease.
    const res = await app.request("/v1/events?last_event_id=0", as(tokens.a));
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes(mine.id)) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(text).not.toContain(theirs.id);
    // The record names who asked.
    const granted = record.since(0).changes.filter((c) => c.type === "lease.granted");
    expect(granted.map((c) => c.actor)).toEqual([
      { route: "POST /v1/leases", principal: "team-a", request_id: expect.any(String) },
      { route: "POST /v1/leases", principal: "team-b", request_id: expect.any(String) },
    ]);
  });
});

describe("whose lease it is", () => {
  test("patterns that cover another's workers do not show its leases; a lease nobody took through the API is the pattern's", async () => {
    const { app } = build(true);
    const mine = (await (await app.request("/v1/leases", as(tokens.a, grant("a-1")))).json()) as { id: string };
    const line = "LEASE vm-7 mem=16 streams=1 priority=1 ttl=60\n";
    const ctl = await app.request(
      "/v1/gpus/GPU-1/ctl",
      as(tokens.admin, { method: "POST", headers: { "content-type": "text/plain" }, body: line }),
    );
    expect(ctl.status).toBe(200);
    const workers = async (token: string) =>
      ((await (await app.request("/v1/leases", as(token))).json()) as { worker_id: string }[]).map((l) => l.worker_id);
    expect(await workers(tokens.any)).toEqual(["vm-7"]);
    expect(await workers(tokens.a)).toEqual(["a-1"]);
    expect((await app.request(`/v1/leases/${mine.id}`, as(tokens.any))).status).toBe(404);
  });

  test("a lease stays its principal's across a restart: the journal keeps who took it", async () => {
    const before = build(true);
    const mine = (await (await before.app.request("/v1/leases", as(tokens.any, grant("a-1")))).json()) as { id: string; principal: string };
    expect(mine.principal).toBe("team-any");
    const dir = tempDir("gbh-tenancy-journal-");
    const path = join(dir.path, "leases.jsonl");
    const journal = new LeaseJournal(path);
    for (const l of before.host.leases.live()) journal.grant(l);
    journal.close();
    before.host.close();
    // A new bridge on the same journal.
    const after = build(true);
    const loaded = new LeaseJournal(path).load();
    dir.cleanup();
    expect(loaded.problems).toEqual([]);
    expect(after.host.leases.restore(loaded.leases).restored.map((l) => l.principal)).toEqual(["team-any"]);
    // team-a's patterns cover a-1, but the lease is team-any's: unknown to team-a, counted for team-any.
    expect((await after.app.request(`/v1/leases/${mine.id}`, as(tokens.a))).status).toBe(404);
    expect((await after.app.request(`/v1/leases/${mine.id}`, as(tokens.any))).status).toBe(200);
    const me = (await (await after.app.request("/v1/principals/me", as(tokens.any))).json()) as { quotas: { leases: { use: number } } };
    expect(me.quotas.leases.use).toBe(1);
  });
});

describe("without a tokens file", () => {
  test("reads need no token, and a change names the single token as its principal", async () => {
    const { app, record } = build(false);
    expect((await app.request("/v1/gpus")).status).toBe(200);
    expect((await app.request("/v1/principals/me")).status).toBe(409);
    expect((await app.request("/v1/leases", grant("w-1"))).status).toBe(401);
    expect((await app.request("/v1/leases", as("single-token-0123456789", grant("w-1")))).status).toBe(201);
    expect(record.since(0).changes.find((c) => c.type === "lease.granted")?.actor).toEqual({
      route: "POST /v1/leases",
      principal: "api-token",
      request_id: expect.any(String),
    });
  });
});
