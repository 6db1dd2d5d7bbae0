#!/usr/bin/env node
// Checks, offline and before `npm ci`, that package-lock.json can install this project exactly on
// any platform, whatever the registry happens to serve today:
//
// - every dependency in package.json is pinned to one exact version (or is a file: stand-in);
// - the lock records the same dependencies as package.json;
// - every optional dependency of every locked package is locked too, for every platform. A lock
//   written against a registry that lacked, say, @deno/darwin-arm64 leaves it out; `npm ci` on a
//   machine that needs the missing one then fails, and `npm install` rewrites the lock. Catching
//   it here names the missing package, on linux-x64 as well as anywhere else;
// - cbor-x's native addon (cbor-extract) is replaced by the stand-in in packaging/npm-omit/, and
//   nothing of its build chain is locked.
//
// `check-lock.mjs --tarball PATH FILE` instead checks that FILE (a tarball fetched outside
// `npm ci`, such as the arm64 Bun runtime) has the integrity the lock records for PATH.
//
// It reads only files in the repository, so a registry that gains or loses other platforms'
// binaries cannot change its answer. Exit 1 with one line per problem.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
const problems = [];

if (process.argv[2] === "--tarball") {
  const [, , , path, file] = process.argv;
  const want = lock.packages?.[path]?.integrity;
  const got = `sha512-${createHash("sha512").update(readFileSync(file)).digest("base64")}`;
  if (got !== want) {
    console.error(`check-lock: ${file} has integrity ${got}, but the lock records ${want} for "${path}"`);
    process.exit(1);
  }
  process.exit(0);
}
const EXACT = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;
const STAND_IN = "file:packaging/npm-omit/cbor-extract";
const UNWANTED = ["node-gyp-build-optional-packages", "detect-libc"];

const declared = { ...pkg.dependencies, ...pkg.devDependencies };
for (const [name, spec] of Object.entries(declared)) {
  if (!EXACT.test(spec) && !(name === "cbor-extract" && spec === STAND_IN)) {
    problems.push(`package.json: "${name}": "${spec}" is not one exact version`);
  }
}

const rootEntry = lock.packages?.[""];
if (lock.lockfileVersion !== 3 || !rootEntry) {
  problems.push(`package-lock.json: lockfileVersion ${lock.lockfileVersion} is not 3, or its root entry is missing`);
} else {
  for (const field of ["dependencies", "devDependencies"]) {
    const want = JSON.stringify(Object.entries(pkg[field] ?? {}).sort());
    const have = JSON.stringify(Object.entries(rootEntry[field] ?? {}).sort());
    if (want !== have) problems.push(`package-lock.json: root ${field} ${have} differ from package.json's ${want}`);
  }
}

/** Where Node's resolution finds `dep` for the package locked at `path`. */
function resolve(path, dep) {
  for (let at = path; ; ) {
    const candidate = `${at ? `${at}/` : ""}node_modules/${dep}`;
    if (lock.packages[candidate]) return candidate;
    if (!at) return undefined;
    const i = at.lastIndexOf("/node_modules/");
    at = i < 0 ? "" : at.slice(0, i);
  }
}

for (const [path, entry] of Object.entries(lock.packages ?? {})) {
  if (path === "" || entry.link) continue;
  if (path.startsWith("node_modules/") && !entry.integrity) {
    problems.push(`package-lock.json: "${path}" has no integrity hash`);
  }
  for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
    if (!resolve(path, dep)) {
      problems.push(`package-lock.json: "${path}" lists the optional dependency "${dep}", which is not locked (was the lock written against a registry that lacked it?)`);
    }
  }
  const name = path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
  if (UNWANTED.includes(name) || name.startsWith("@cbor-extract/")) {
    problems.push(`package-lock.json: "${path}" belongs to cbor-extract's native build, which must not be installed`);
  }
}
const cborExtract = lock.packages?.["node_modules/cbor-extract"];
if (!cborExtract?.link || cborExtract.resolved !== STAND_IN.slice("file:".length)) {
  problems.push(`package-lock.json: "node_modules/cbor-extract" must link to ${STAND_IN.slice("file:".length)}, not ${JSON.stringify(cborExtract)}`);
}

if (problems.length) {
  for (const p of problems) console.error(`check-lock: ${p}`);
  console.error("check-lock: regenerate with `rm -rf node_modules package-lock.json && npm install` against a complete registry (docs/install.md)");
  process.exit(1);
}
console.log(`check-lock: ${Object.keys(lock.packages).length - 1} locked packages, every optional one for every platform`);
