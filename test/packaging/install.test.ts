/**
 * The install is exact and independent of what the registry serves for other platforms
 * (docs/install.md): scripts/check-lock.mjs accepts the committed lock, refuses the kinds of lock
 * that broke fresh clones before, and cbor-x's native addon is never installed.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { REPO, tempDir } from "../helpers.ts";

let scratch: { path: string; cleanup: () => void };
beforeEach(() => {
  scratch = tempDir("gbh-lock-");
  mkdirSync(join(scratch.path, "scripts"));
  copyFileSync(join(REPO, "scripts/check-lock.mjs"), join(scratch.path, "scripts/check-lock.mjs"));
  copyFileSync(join(REPO, "package.json"), join(scratch.path, "package.json"));
});
afterEach(() => scratch.cleanup());

type Lock = { packages: Record<string, Record<string, unknown>> };
const committedLock = (): Lock => JSON.parse(readFileSync(join(REPO, "package-lock.json"), "utf8"));

function check(lock: Lock, pkg?: Record<string, unknown>, args: string[] = []) {
  writeFileSync(join(scratch.path, "package-lock.json"), JSON.stringify(lock));
  if (pkg) writeFileSync(join(scratch.path, "package.json"), JSON.stringify(pkg));
  const r = Bun.spawnSync(["node", join(scratch.path, "scripts/check-lock.mjs"), ...args], { cwd: scratch.path });
  return { code: r.exitCode, err: r.stderr.toString() };
}

describe("check-lock", () => {
  test("accepts the committed lock", () => {
    expect(check(committedLock())).toEqual({ code: 0, err: "" });
  });

  test("refuses a lock that lacks another platform's optional binary, naming it", () => {
    // What a registry without @deno/darwin-arm64 made `npm install` write.
    const lock = committedLock();
    delete lock.packages["node_modules/@deno/darwin-arm64"];
    const r = check(lock);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`"node_modules/deno" lists the optional dependency "@deno/darwin-arm64", which is not locked`);
  });

  test("refuses the real cbor-extract and its build chain", () => {
    const lock = committedLock();
    lock.packages["node_modules/cbor-extract"] = {
      version: "2.2.3",
      integrity: "sha512-x",
      optionalDependencies: { "@cbor-extract/cbor-extract-linux-x64": "2.2.3" },
    };
    lock.packages["node_modules/node-gyp-build-optional-packages"] = { version: "5.1.1", integrity: "sha512-y" };
    const r = check(lock);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`"node_modules/cbor-extract" lists the optional dependency "@cbor-extract/cbor-extract-linux-x64"`);
    expect(r.err).toContain(`"node_modules/node-gyp-build-optional-packages" belongs to cbor-extract's native build`);
    expect(r.err).toContain(`"node_modules/cbor-extract" must link to packaging/npm-omit/cbor-extract`);
  });

  test("refuses a range where an exact version belongs", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8"));
    pkg.dependencies.hono = "^4.13.19";
    const r = check(committedLock(), pkg);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`package.json: "hono": "^4.13.19" is not one exact version`);
  });

  test("--tarball compares a fetched file with the lock's integrity", () => {
    const lock = committedLock();
    const file = join(scratch.path, "pkg.tgz");
    writeFileSync(file, "not the runtime");
    const r = check(lock, undefined, ["--tarball", "node_modules/@oven/bun-linux-aarch64", file]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`but the lock records ${lock.packages["node_modules/@oven/bun-linux-aarch64"]!.integrity}`);
  });
});

describe("the installed tree", () => {
  test("has the stand-in, not cbor-x's native addon", () => {
    expect(lstatSync(join(REPO, "node_modules/cbor-extract")).isSymbolicLink()).toBe(true);
    expect(existsSync(join(REPO, "node_modules/@cbor-extract"))).toBe(false);
    expect(existsSync(join(REPO, "node_modules/node-gyp-build-optional-packages"))).toBe(false);
    const require = createRequire(join(REPO, "node_modules/cbor-x/package.json"));
    expect(() => require("cbor-extract")).toThrow("cbor-extract is deliberately not installed");
  });

  test("cbor-x round-trips text that the native addon mangled, on plain cbor-x too", async () => {
    // The plain entry tries cbor-extract and must fall back to JavaScript when the stand-in throws.
    const { encode, decode } = await import("cbor-x");
    const value = { id: "ü-模型-🚀", note: "x".repeat(300) + "é", list: ["a", "ß", ""] };
    expect(decode(encode(value))).toEqual(value);
  });
});
