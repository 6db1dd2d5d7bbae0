#!/usr/bin/env node
// `make mutation`: StrykerJS over the core modules of scripts/mutation-modules.mjs, one Stryker
// run per module, each mutant tested by `bun test --bail` over that module's own test files.
//
// Which modules run:
//   FULL=1          every module;
//   MODULE=name     that one (a comma-separated list also works);
//   otherwise       the modules whose mutated files or test files differ from BASE (the working
//                   tree, untracked files included), BASE defaulting to the merge-base with
//                   `main`, or HEAD~1 where that is HEAD itself (a CI clone of main).
// CONCURRENCY (default 2) is Stryker's number of test runners. MUTATION_BUDGET_S bounds the
// whole run in seconds: a module that would start, or is still running, past it is reported as
// not run and does not fail the run (CI sets it; docs/testing.md says why).
//
// Prints per module: killed, survived, timeout, no-coverage and the score, then each surviving
// mutant (file:line, mutator, replacement). Exits 1 when a module that ran scores under
// THRESHOLD. Reports land in reports/mutation/<module>/report.json.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { MODULES, THRESHOLD } from "./mutation-modules.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);
const started = Date.now();
const budgetS = process.env.MUTATION_BUDGET_S ? Number(process.env.MUTATION_BUDGET_S) : Infinity;
const concurrency = Number(process.env.CONCURRENCY ?? 2);
if (!(budgetS > 0) || !Number.isInteger(concurrency) || concurrency < 1) {
  fail(
    `MUTATION_BUDGET_S must be a positive number and CONCURRENCY a positive integer (got ${process.env.MUTATION_BUDGET_S}, ${process.env.CONCURRENCY})`,
  );
}

function fail(message) {
  console.error(`mutation: ${message}`);
  process.exit(2);
}

function git(...args) {
  const r = spawnSync("git", args, { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** A `tests` entry as the files it names; a `*` may stand in the last segment. */
function testFiles(pattern) {
  if (!pattern.includes("*")) return existsSync(pattern) ? [pattern] : [];
  const dir = dirname(pattern);
  const re = new RegExp(`^${basename(pattern).split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
  return existsSync(dir) ? readdirSync(dir).filter((f) => re.test(f)).sort().map((f) => `${dir}/${f}`) : [];
}

/** A `mutate` entry as Stryker patterns: the file, or the line range of a declaration or statement in it. */
function strykerPatterns(entry) {
  const m = /^([^#~]+)(?:([#~])(.+))?$/.exec(entry);
  const [, file, kind, what] = m;
  if (!existsSync(file)) fail(`${file} (in scripts/mutation-modules.mjs) does not exist`);
  if (kind === undefined) return [file];
  const text = readFileSync(file, "utf8");
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = [];
  const visit = (node) => {
    if (kind === "#" && declares(node, what)) found.push(node);
    if (kind === "~" && ts.SyntaxKind[node.kind].endsWith("Statement") && node.getText(sf).includes(what)) found.push(node);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (found.length === 0) {
    fail(
      `${file} has no ${kind === "#" ? "declaration named" : "statement containing"} ${
        JSON.stringify(what)
      } (scripts/mutation-modules.mjs is out of date)`,
    );
  }
  // For a statement, the innermost (the last visited of those that contain the text).
  const nodes = kind === "~" ? [found.reduce((a, b) => (b.getWidth(sf) < a.getWidth(sf) ? b : a))] : found;
  return nodes.map((n) => {
    const from = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
    const to = sf.getLineAndCharacterOfPosition(n.getEnd()).line + 1;
    return `${file}:${from}-${to}`;
  });
}

function declares(node, name) {
  const named = ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) || ts.isVariableDeclaration(node);
  if (!named || node.name === undefined || !(ts.isIdentifier(node.name) || ts.isPrivateIdentifier(node.name))) return false;
  if (ts.isVariableDeclaration(node)) return node.name.text === name && node.initializer !== undefined;
  return node.name.text === name && node.body !== undefined;
}

/** The module names to run, and a line saying why. */
function selectModules() {
  const names = Object.keys(MODULES);
  if (process.env.FULL === "1") return { run: names, why: "FULL=1: every core module" };
  if (process.env.MODULE) {
    const asked = process.env.MODULE.split(",").map((s) => s.trim()).filter(Boolean);
    const unknown = asked.filter((n) => !(n in MODULES));
    if (unknown.length > 0) fail(`no module ${unknown.join(", ")}: the modules are ${names.join(", ")}`);
    return { run: asked, why: `MODULE=${asked.join(",")}` };
  }
  let base = process.env.BASE;
  if (!base) {
    const head = git("rev-parse", "HEAD");
    const mergeBase = git("merge-base", "HEAD", "main");
    base = mergeBase !== null && mergeBase !== head ? mergeBase : git("rev-parse", "--verify", "-q", "HEAD~1");
    if (base === null) return { run: names, why: "no base to compare with (a single commit): every core module" };
  } else if (git("rev-parse", "--verify", "-q", `${base}^{commit}`) === null) {
    fail(`BASE=${base} is not a commit`);
  }
  const changed = new Set([
    ...(git("diff", "--name-only", base) ?? "").split("\n"),
    ...(git("ls-files", "--others", "--exclude-standard") ?? "").split("\n"),
  ].filter(Boolean));
  const run = names.filter((n) => {
    const m = MODULES[n];
    return m.mutate.some((e) => changed.has(e.replace(/[#~].*$/, ""))) || m.tests.flatMap(testFiles).some((f) => changed.has(f));
  });
  return { run, why: `files changed since ${base.slice(0, 12)}` };
}

/** Runs Stryker for one module within `deadline`; resolves with its report, or null when cut off. */
async function runModule(name, deadline) {
  const m = MODULES[name];
  const tests = [...new Set(m.tests.flatMap(testFiles))];
  if (tests.length === 0) fail(`${name}: none of its test files exist`);
  const out = join("reports", "mutation", name);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const config = {
    $schema: "../../../node_modules/@stryker-mutator/core/schema/stryker-schema.json",
    testRunner: "command",
    // --bail: the first failing test kills the mutant; the rest need not run.
    commandRunner: { command: `node_modules/.bin/bun test --bail --timeout 20000 ${tests.map((t) => `./${t}`).join(" ")}` },
    coverageAnalysis: "off",
    mutate: m.mutate.flatMap(strykerPatterns),
    concurrency,
    reporters: ["json", "progress-append-only"],
    jsonReporter: { fileName: join(out, "report.json") },
    tempDirName: join(".stryker-tmp", name),
    // mock/jetson holds symlinked folders, which Stryker cannot copy into its sandbox; no mapped test reads it.
    ignorePatterns: ["/mock/jetson", "/dist", "/build", "/bench", "/docs", "/reports", "/.state", "/.stryker-tmp", "*.log"],
    // A loaded machine makes honest test runs slow: a mutant counts as a timeout only well past
    // the unmutated run's time.
    timeoutFactor: 2,
    timeoutMS: 15000,
    logLevel: "warn",
    cleanTempDir: true,
  };
  const configFile = join(out, "stryker.config.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2) + "\n");
  console.log(`mutation: ${name}: ${config.mutate.join(" ")} against ${tests.length} test files`);
  const child = spawn(process.execPath, ["node_modules/@stryker-mutator/core/bin/stryker.js", "run", configFile], {
    stdio: ["ignore", "inherit", "inherit"],
    detached: true, // its own process group, so a cut-off ends the test runners too
  });
  let cutOff = false;
  const timer = deadline === Infinity ? undefined : setTimeout(() => {
    cutOff = true;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }, Math.max(0, deadline - Date.now()));
  const code = await new Promise((resolve) => child.on("exit", (c) => resolve(c)));
  clearTimeout(timer);
  if (cutOff) {
    rmSync(config.tempDirName, { recursive: true, force: true });
    return null;
  }
  const reportFile = config.jsonReporter.fileName;
  if (code !== 0 || !existsSync(reportFile)) return { error: `Stryker exited with ${code} and no report (its output above says why)` };
  return JSON.parse(readFileSync(reportFile, "utf8"));
}

/** Counts and survivors of a Stryker JSON report. */
function summarise(report) {
  const n = { Killed: 0, Survived: 0, Timeout: 0, NoCoverage: 0, other: 0 };
  const survivors = [];
  for (const [file, f] of Object.entries(report.files)) {
    for (const mu of f.mutants) {
      if (mu.status in n) n[mu.status]++;
      else n.other++;
      if (mu.status === "Survived" || mu.status === "NoCoverage") {
        const r = (mu.replacement ?? "").replace(/\s+/g, " ");
        survivors.push(
          `  ${
            mu.status === "Survived" ? "survived" : "no-cover"
          } ${file}:${mu.location.start.line}:${mu.location.start.column} ${mu.mutatorName} -> ${
            r.length > 70 ? r.slice(0, 67) + "..." : r
          }`,
        );
      }
    }
  }
  const detected = n.Killed + n.Timeout;
  const valid = detected + n.Survived + n.NoCoverage;
  return { n, survivors, score: valid === 0 ? 100 : (100 * detected) / valid };
}

const { run, why } = selectModules();
if (run.length === 0) {
  console.log(`mutation: no core module changed (${why}); nothing to mutate. FULL=1 runs them all.`);
  process.exit(0);
}
console.log(`mutation: ${run.join(", ")} (${why}); threshold ${THRESHOLD}%, concurrency ${concurrency}`);
const rows = [];
for (const name of run) {
  const deadline = started + budgetS * 1000;
  const report = Date.now() < deadline ? await runModule(name, deadline) : null;
  rows.push({ name, result: report === null ? null : report.error ? report : summarise(report) });
}

const pad = (s, w) => String(s).padStart(w);
console.log(
  `\n${"module".padEnd(16)} ${pad("killed", 6)} ${pad("survived", 8)} ${pad("timeout", 7)} ${pad("no-cov", 6)} ${pad("score", 7)}`,
);
let below = 0;
for (const { name, result } of rows) {
  if (result === null) {
    console.log(`${name.padEnd(16)} not run: the ${budgetS} s budget (MUTATION_BUDGET_S) was spent; run MODULE=${name} make mutation`);
    continue;
  }
  if (result.error) {
    below++;
    console.log(`${name.padEnd(16)} failed: ${result.error}`);
    continue;
  }
  const { n, score } = result;
  const ok = score >= THRESHOLD;
  if (!ok) below++;
  console.log(
    `${name.padEnd(16)} ${pad(n.Killed, 6)} ${pad(n.Survived, 8)} ${pad(n.Timeout, 7)} ${pad(n.NoCoverage, 6)} ${
      pad(score.toFixed(1) + "%", 7)
    }${ok ? "" : `  below ${THRESHOLD}%`}`,
  );
}
for (const { name, result } of rows) {
  if (result?.survivors?.length > 0) console.log(`\n${name}: surviving mutants\n${result.survivors.join("\n")}`);
}
console.log(
  `\nmutation: ${rows.filter((r) => r.result !== null).length} of ${rows.length} modules run in ${
    Math.round((Date.now() - started) / 1000)
  } s`,
);
if (below > 0) {
  console.error(`mutation: ${below} module(s) under ${THRESHOLD}% or failed to run (docs/testing.md lists the known equivalent mutants)`);
  process.exit(1);
}
