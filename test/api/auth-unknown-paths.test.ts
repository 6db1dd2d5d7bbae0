/**
 * Paths no route serves: with one API token a read of one is a plain 404 and any other method
 * needs the token first; with a tokens file every request needs a token of the file, so an
 * unknown path tells a stranger nothing about which paths exist.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { PrincipalGuard } from "../../src/api/principals.ts";
import { newToken, tokenHash } from "../../src/api/tokens-file.ts";
import type { HostState } from "../../src/host/state.ts";
import { tempDir } from "../helpers.ts";
import { hostApp } from "./tenancy-helpers.ts";

const TOKEN = "unknown-paths-token-0123456789";
let host: HostState | null = null;
afterEach(() => host?.close());

function app(withTokensFile: boolean): { app: ReturnType<typeof hostApp>["app"]; fileToken: string } {
  const fileToken = newToken();
  const dir = tempDir("gbh-unknown-paths-");
  const file = join(dir.path, "tokens.toml");
  writeFileSync(file, `[principals.reader]\nrole = "reader"\ntoken_sha256 = "${tokenHash(fileToken)}"\n`);
  const built = hostApp({ token: TOKEN, ...(withTokensFile && { principals: new PrincipalGuard(file) }) });
  host = built.host;
  dir.cleanup();
  return { app: built.app, fileToken };
}
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const answer = async (res: Response) => ({
  status: res.status,
  code: ((await res.json()) as { error: { code: string } }).error.code,
  challenge: res.headers.get("www-authenticate"),
});

describe("an unknown path with the single API token", () => {
  test("GET and HEAD need no token and get 404", async () => {
    const { app: a } = app(false);
    expect(await answer(await a.request("/v1/nothing"))).toEqual({ status: 404, code: "not_found", challenge: null });
    const head = await a.request("/v1/nothing", { method: "HEAD" });
    expect(head.status).toBe(404);
    expect(head.headers.get("www-authenticate")).toBeNull();
  });

  test("any other method needs the token first (401 naming the API token), then 404", async () => {
    const { app: a } = app(false);
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const res = await a.request("/v1/nothing", { method });
      expect({ method, status: res.status }).toEqual({ method, status: 401 });
      const body = (await res.json()) as { error: { message: string } };
      expect(body.error.message).toBe("This route needs 'Authorization: Bearer <token>' with the bridge's API token");
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="gpu-bridge-host"');
      expect((await a.request("/v1/nothing", { method, headers: bearer(TOKEN) })).status).toBe(404);
    }
  });
});

describe("an unknown path with a tokens file", () => {
  test("every method needs a token of the file (401 saying so), then 404", async () => {
    const { app: a, fileToken } = app(true);
    for (const method of ["GET", "HEAD", "POST", "DELETE"]) {
      const res = await a.request("/v1/nothing", { method });
      expect({ method, status: res.status }).toEqual({ method, status: 401 });
      if (method !== "HEAD") {
        const body = (await res.json()) as { error: { message: string } };
        expect(body.error.message).toBe("This route needs 'Authorization: Bearer <token>' with a token of the bridge's tokens file");
      }
      // The single API token is no token of the file.
      expect((await a.request("/v1/nothing", { method, headers: bearer(TOKEN) })).status).toBe(401);
      expect((await a.request("/v1/nothing", { method, headers: bearer(fileToken) })).status).toBe(404);
    }
  });
});
