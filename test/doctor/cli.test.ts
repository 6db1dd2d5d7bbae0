/** `gpu-bridge-host doctor` on the command line: flags, help generated from the table, JSON, exit status, no token in the output. */
import { describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { doctorFlags, parseCommand } from "../../src/cli/options.ts";
import { DOCTOR_HELP, DOCTOR_USAGE } from "../../src/cli/usage.ts";
import { main } from "../../src/main.ts";
import { memoryStdio, tempFolder } from "../helpers.ts";
import { fakeEnv } from "../inventory/fakes.ts";

describe("doctor's flags", () => {
  test("every flag has one help line, and the defaults the parser applies are the ones printed", () => {
    expect(Object.keys(DOCTOR_HELP).sort()).toEqual(Object.keys(doctorFlags()).sort());
    for (const flag of Object.keys(DOCTOR_HELP).filter((f) => f !== "help")) {
      expect(DOCTOR_USAGE).toMatch(new RegExp(`^  --${flag}\\b`, "m"));
    }
    const c = parseCommand(["doctor"], { HOME: "/h" });
    expect(c).toMatchObject({
      kind: "doctor",
      options: {
        console: null,
        timeoutMs: DEFAULTS.doctorTimeoutMs,
        spoolMaxBytes: DEFAULTS.spoolMaxMb * 1024 * 1024,
        devRoot: DEFAULTS.devRoot,
      },
    });
    expect(DOCTOR_USAGE).toContain(`default ${DEFAULTS.doctorTimeoutMs}`);
  });

  test("the console is probed only when --tcp-port or --auth-token is given; bad values are refused naming the flag", () => {
    expect(parseCommand(["doctor", "--tcp-port", "4000"], {})).toMatchObject({
      options: { console: { port: 4000, token: DEFAULTS.authToken } },
    });
    expect(parseCommand(["doctor", "--auth-token", "t0ken"], {})).toMatchObject({
      options: { console: { port: DEFAULTS.tcpPort, token: "t0ken" } },
    });
    expect(() => parseCommand(["doctor", "--tcp-port", "0"], {})).toThrow("Option --tcp-port must be 1-65535, got 0");
    expect(() => parseCommand(["doctor", "--timeout-ms", "x"], {})).toThrow(
      'Option --timeout-ms needs a positive integer (1-60000), got "x"',
    );
    expect(() => parseCommand(["doctor", "extra"], {})).toThrow('doctor: unexpected argument "extra"');
    expect(parseCommand(["doctor", "--help"], {})).toEqual({ kind: "help", topic: "doctor" });
  });
});

describe("doctor on the command line", () => {
  test("--json is one object with the same checks as the text; the exit status follows the failures", async () => {
    const root = tempFolder("doctor-cli-");
    try {
      const args = ["doctor", "--sys-root", root, "--dev-root", root, "--state-dir", join(root, "state")];
      const json = memoryStdio();
      const code = await main([...args, "--json"], fakeEnv, json.io);
      const report = JSON.parse(json.out.join("")) as { schema: string; ok: boolean; checks: { status: string; name: string }[] };
      expect(report.schema).toBe("gpu-bridge-doctor/v1");
      // No device nodes in an empty tree: the driver's nodes fail.
      expect(report.ok).toBe(false);
      expect(code).toBe(1);
      const text = memoryStdio();
      expect(await main(args, fakeEnv, text.io)).toBe(1);
      const lines = text.out.join("").split("\n").filter((l) => /^  [✓✗!·] /.test(l));
      expect(lines.length).toBe(report.checks.length);
      expect(lines.filter((l) => l.startsWith("  ✗")).length).toBe(report.checks.filter((c) => c.status === "fail").length);
      expect(text.out.join("")).toMatch(/\n {6}fix: /);
      const mock = memoryStdio();
      expect(await main(["doctor", "--mock", "--state-dir", join(root, "state")], {}, mock.io)).toBe(0);
      expect(mock.out.join("")).toContain("ok: everything these flags need works");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a console that refuses the token fails the check, and the token is never printed", async () => {
    const root = tempFolder("doctor-cli-");
    try {
      const { out, io } = memoryStdio();
      // Port 1 on loopback: nothing listens, so the probe fails fast.
      const code = await main(
        ["doctor", "--mock", "--state-dir", join(root, "s"), "--tcp-port", "1", "--auth-token", "hunter2-secret", "--timeout-ms", "300"],
        {},
        io,
      );
      expect(code).toBe(1);
      expect(out.join("")).toContain("✗ 127.0.0.1:1:");
      expect(out.join("")).not.toContain("hunter2-secret");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
