/**
 * The policy settings an operator standardises across a fleet (lease maxima and defaults, the
 * verification mode, the allowed kernels) as serve flags and --config keys: each from the flag
 * and from the file (the flag wins), their defaults, their range and cross-flag refusals with
 * the same message from serve and `config check`, and the variables the verify flags replace.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { configured } from "../../src/cli/config-file.ts";
import { type BridgeOptions, parseCommand, UsageError } from "../../src/cli/options.ts";
import { leasePolicyOf } from "../../src/app/wiring.ts";
import { main } from "../../src/main.ts";
import { memoryStdio, tempDir } from "../helpers.ts";

type Env = Record<string, string | undefined>;

function serve(argv: string[], env: Env = {}): BridgeOptions {
  const c = parseCommand(["serve", ...argv], env);
  if (c.kind !== "serve") throw new Error("expected serve");
  return c.options;
}

const refusal = (argv: string[], env: Env = {}) => {
  try {
    parseCommand(["serve", ...argv], env);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error(`accepted: ${argv.join(" ")}`);
};

/** serve --config FILE (holding `text`) plus `argv`: the options, or the refusal's message, and the file's path. */
function withFile(text: string, argv: string[] = [], env: Env = {}): { file: string; options?: BridgeOptions; error?: string } {
  const dir = tempDir("gbh-policy-");
  try {
    const file = join(dir.path, "fleet.toml");
    writeFileSync(file, text);
    const c = parseCommand(["serve", "--config", file, ...argv], env);
    if (c.kind !== "serve" || c.config === undefined) throw new Error("expected serve with a config");
    try {
      return { file, options: configured("serve", c.config, env).options };
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      return { file, error: (error as Error).message };
    }
  } finally {
    dir.cleanup();
  }
}

/** Each setting: its flag, a value other than the default, and the option it sets. */
const SETTINGS = [
  ["max-ttl-s", 3600, "maxTtlS", 3600],
  ["max-lease-mem-mb", 8192, "maxLeaseMemMb", 8192],
  ["max-lease-streams", 4, "maxLeaseStreams", 4],
  ["lease-mem-mb", 2048, "leaseMemMb", 2048],
  ["lease-streams", 2, "leaseStreams", 2],
  ["lease-ttl-s", 300, "leaseTtlS", 300],
  ["verify-mode", "sampled", "verifyMode", "sampled"],
  ["verify-sweep-ms", 5000, "verifySweepMs", 5000],
  ["allowed-kernels", "vadd,ptx", "allowedKernels", ["vadd", "ptx"]],
] as const;

describe("policy settings", () => {
  test("their defaults keep today's behaviour: a week, 1024 streams, no memory maximum, no default size, full checks, every kernel", () => {
    const o = serve([]);
    expect({
      maxTtlS: o.maxTtlS,
      maxLeaseMemMb: o.maxLeaseMemMb,
      maxLeaseStreams: o.maxLeaseStreams,
      leaseMemMb: o.leaseMemMb,
      leaseStreams: o.leaseStreams,
      leaseTtlS: o.leaseTtlS,
      verifyMode: o.verifyMode,
      verifySweepMs: o.verifySweepMs,
      allowedKernels: o.allowedKernels,
    }).toEqual({
      maxTtlS: 604800,
      maxLeaseMemMb: null,
      maxLeaseStreams: 1024,
      leaseMemMb: null,
      leaseStreams: null,
      leaseTtlS: 120,
      verifyMode: "full",
      verifySweepMs: 0,
      allowedKernels: ["vadd", "matmul", "ptx"],
    });
    expect(leasePolicyOf(o)).toEqual({ maxTtlS: 604800, maxMemMb: null, maxStreams: 1024, memMb: null, streams: null, ttlS: 120 });
  });

  test.each(SETTINGS)("--%s %p sets it, and so does the --config key; the flag overrides the file", (flag, value, option, want) => {
    expect(serve([`--${flag}`, String(value)])[option]).toEqual(want);
    const toml = typeof value === "number" ? `${flag} = ${value}\n` : `${flag} = "${value}"\n`;
    expect(withFile(toml).options?.[option]).toEqual(want);
    const other = serve([])[option];
    expect(withFile(toml, [`--${flag}`, Array.isArray(other) ? other.join(",") : String(other ?? 1)]).options?.[option]).toEqual(
      other ?? 1,
    );
  });

  test("the file's policy becomes the lease manager's", () => {
    const { options } = withFile(
      "max-ttl-s = 900\nmax-lease-mem-mb = 4096\nmax-lease-streams = 3\nlease-mem-mb = 1024\nlease-streams = 1\n",
    );
    expect(leasePolicyOf(options!)).toEqual({ maxTtlS: 900, maxMemMb: 4096, maxStreams: 3, memMb: 1024, streams: 1, ttlS: 120 });
  });

  test("a value out of range is refused with the flag's message, and from a file with the same message naming the file", () => {
    for (
      const [flag, bad, message] of [
        ["max-ttl-s", "604801", "Option --max-ttl-s must be 1-604800, got 604801"],
        ["max-ttl-s", "0", "Option --max-ttl-s must be 1-604800, got 0"],
        ["max-lease-streams", "1025", "Option --max-lease-streams must be 1-1024, got 1025"],
        ["lease-streams", "0", "Option --lease-streams must be 1-1024, got 0"],
        ["max-lease-mem-mb", "0", "Option --max-lease-mem-mb must be 1-2147483647, got 0"],
        ["lease-ttl-s", "604801", "Option --lease-ttl-s must be 1-604800, got 604801"],
        ["verify-mode", "some", 'Option --verify-mode must be one of full, sampled, got "some"'],
        ["verify-sweep-ms", "86400001", "Option --verify-sweep-ms must be 0-86400000, got 86400001"],
        ["allowed-kernels", "vadd,conv", 'Option --allowed-kernels takes vadd, matmul, ptx separated by commas, got "conv" in "vadd,conv"'],
        ["allowed-kernels", "vadd,vadd", 'Option --allowed-kernels names vadd twice in "vadd,vadd"'],
      ] as const
    ) {
      expect(refusal([`--${flag}`, bad])).toBe(message);
      const toml = /^\d+$/.test(bad) ? `${flag} = ${bad}\n` : `${flag} = "${bad}"\n`;
      const r = withFile(toml);
      expect(r.error).toBe(`Config ${r.file}: ${message}`);
    }
  });

  test("a default above its maximum is refused naming both flags and values, from the command line, a file, or both", () => {
    expect(refusal(["--lease-mem-mb", "9000", "--max-lease-mem-mb", "8192"])).toBe(
      "Option --lease-mem-mb 9000 is over --max-lease-mem-mb 8192: a default lease must be one the maximum allows; lower --lease-mem-mb or raise --max-lease-mem-mb",
    );
    expect(refusal(["--lease-streams", "5", "--max-lease-streams", "4"])).toContain(
      "Option --lease-streams 5 is over --max-lease-streams 4:",
    );
    expect(refusal(["--lease-ttl-s", "200", "--max-ttl-s", "100"])).toContain("Option --lease-ttl-s 200 is over --max-ttl-s 100:");
    // The maximum's own default counts too.
    expect(refusal(["--lease-streams", "1024", "--max-lease-streams", "1023"])).toContain("--max-lease-streams 1023:");
    const r = withFile("max-lease-mem-mb = 8192\n", ["--lease-mem-mb", "9000"]);
    expect(r.error).toBe(
      `Config ${r.file}: Option --lease-mem-mb 9000 is over --max-lease-mem-mb 8192: a default lease must be one the maximum allows; lower --lease-mem-mb or raise --max-lease-mem-mb`,
    );
    // Equal is allowed; a default TTL not given follows a shorter maximum.
    expect(serve(["--lease-mem-mb", "8192", "--max-lease-mem-mb", "8192"]).leaseMemMb).toBe(8192);
    expect(serve(["--max-ttl-s", "60"]).leaseTtlS).toBe(60);
    expect(serve(["--max-ttl-s", "121"]).leaseTtlS).toBe(120);
  });

  test("config check on a bad file: exit 2 with serve's message; on a good one, exit 0 listing the settings", async () => {
    const dir = tempDir("gbh-policy-check-");
    try {
      const bad = join(dir.path, "bad.toml");
      writeFileSync(bad, "max-lease-streams = 2\nlease-streams = 3\n");
      let io = memoryStdio();
      expect(await main(["config", "check", bad], {}, io.io)).toBe(2);
      expect(io.err.join("")).toContain(`Config ${bad}: ${refusal(["--max-lease-streams", "2", "--lease-streams", "3"])}`);
      const range = join(dir.path, "range.toml");
      writeFileSync(range, 'allowed-kernels = "cuda"\n');
      io = memoryStdio();
      expect(await main(["config", "check", range], {}, io.io)).toBe(2);
      expect(io.err.join("")).toContain(`Config ${range}: ${refusal(["--allowed-kernels", "cuda"])}`);
      const good = join(dir.path, "good.toml");
      writeFileSync(good, 'max-ttl-s = 3600\nallowed-kernels = "vadd,matmul"\nverify-mode = "sampled"\n');
      io = memoryStdio();
      expect(await main(["config", "check", good], {}, io.io)).toBe(0);
      expect(io.out.join("")).toBe(
        `${good}: ok, 3 settings:\n  max-ttl-s = 3600\n  allowed-kernels = vadd,matmul\n  verify-mode = sampled\n`,
      );
    } finally {
      dir.cleanup();
    }
  });
});

describe("--verify-mode and --verify-sweep-ms over the variables", () => {
  test("the variables still set the mode and sweep when the flags are absent", () => {
    expect(serve([], { GPU_BRIDGE_VRAM_GATE: "sampled" })).toMatchObject({ verifyMode: "sampled", verifySweepMs: 60000 });
    expect(serve([], { GPU_BRIDGE_VRAM_GATE: "sampled", GPU_BRIDGE_VRAM_SWEEP_MS: "5000" })).toMatchObject({
      verifyMode: "sampled",
      verifySweepMs: 5000,
    });
    expect(serve([], { GPU_BRIDGE_VRAM_SWEEP_MS: "7000" })).toMatchObject({ verifyMode: "full", verifySweepMs: 7000 });
    expect(serve([], { GPU_BRIDGE_VRAM_GATE: "full" })).toMatchObject({ verifyMode: "full", verifySweepMs: 0 });
  });

  test("the flags override the variables, from the command line and from a file", () => {
    const env = { GPU_BRIDGE_VRAM_GATE: "sampled", GPU_BRIDGE_VRAM_SWEEP_MS: "5000" };
    expect(serve(["--verify-mode", "full"], env)).toMatchObject({ verifyMode: "full", verifySweepMs: 5000 });
    expect(serve(["--verify-sweep-ms", "0"], env)).toMatchObject({ verifyMode: "sampled", verifySweepMs: 0 });
    expect(withFile('verify-mode = "full"\nverify-sweep-ms = 250\n', [], env).options).toMatchObject({
      verifyMode: "full",
      verifySweepMs: 250,
    });
  });

  test("a sweep variable that is not milliseconds means no sweep, with a warning", () => {
    const c = parseCommand(["serve"], { GPU_BRIDGE_VRAM_SWEEP_MS: "soon" });
    if (c.kind !== "serve") throw new Error("expected serve");
    expect(c.options.verifySweepMs).toBe(0);
    expect(c.warnings).toEqual(['GPU_BRIDGE_VRAM_SWEEP_MS="soon" is not milliseconds: no sweep']);
  });
});
