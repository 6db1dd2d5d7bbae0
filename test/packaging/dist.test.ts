/** `make dist` output installs into a scratch DESTDIR through the tarball's own install.sh. */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VERSION } from "../../src/util/version.ts";
import { FIXTURE, REPO, tempDir } from "../helpers.ts";

let scratch: { path: string; cleanup: () => void };
beforeEach(() => (scratch = tempDir("gbh-dist-")));
afterEach(() => scratch.cleanup());

const sh = (cmd: string[], env: Record<string, string> = {}, cwd = scratch.path) => {
  const r = Bun.spawnSync(cmd, { cwd, env: { PATH: process.env.PATH ?? "", ...env } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};
const mode = (p: string) => statSync(p).mode & 0o777;

for (const arch of ["x64", "arm64"] as const) {
  const tarball = join(REPO, "dist", `gpu-bridge-host-${VERSION}-linux-${arch}.tar.gz`);
  describe(`the ${arch} tarball`, () => {
    test.skipIf(!existsSync(tarball))(`installs with PREFIX and DESTDIR (needs make dist)`, () => {
      expect(sh(["tar", "xzf", tarball]).code).toBe(0);
      const dir = join(scratch.path, `gpu-bridge-host-${VERSION}-linux-${arch}`);
      const root = join(scratch.path, "root");
      const env = { DESTDIR: root, PREFIX: "/opt/gbh", SYSCONFDIR: "/etc" };
      const first = sh([join(dir, "install.sh")], env);
      expect(first.err).toBe("");
      expect(first.code).toBe(0);

      const bin = join(root, "opt/gbh/bin/gpu-bridge-host");
      const unit = join(root, "opt/gbh/lib/systemd/system/gpu-bridge-host.service");
      const envFile = join(root, "etc/default/gpu-bridge-host");
      expect(mode(bin)).toBe(0o755);
      expect(mode(unit)).toBe(0o644);
      expect(mode(envFile)).toBe(0o640);
      expect(existsSync(join(root, "opt/gbh/share/doc/gpu-bridge-host/README.md"))).toBe(true);
      // The man page and the completions, where each looks under a PREFIX other than /usr.
      for (
        const f of [
          "share/man/man1/gpu-bridge-host.1.gz",
          "share/bash-completion/completions/gpu-bridge-host",
          "share/zsh/site-functions/_gpu-bridge-host",
          "share/fish/vendor_completions.d/gpu-bridge-host.fish",
        ]
      ) {
        expect({ file: f, mode: existsSync(join(root, "opt/gbh", f)) ? mode(join(root, "opt/gbh", f)) : null }).toEqual({
          file: f,
          mode: 0o644,
        });
      }
      expect(readFileSync(unit, "utf8")).toContain("\nDynamicUser=yes\n"); // no SYSTEM_USER: no user to run as

      const text = readFileSync(unit, "utf8");
      expect(text).toContain("ExecStart=/opt/gbh/bin/gpu-bridge-host serve --publish");
      expect(text).toContain("EnvironmentFile=-/etc/default/gpu-bridge-host");
      for (const line of ["Restart=on-failure", "StateDirectory=gpu-bridge-host", "NoNewPrivileges=yes", "DevicePolicy=closed"]) {
        expect(text).toContain(line + "\n");
      }
      expect(text).not.toContain("@PREFIX@");
      expect(text).not.toContain("COH_AUTH_TOKEN=");

      // A reinstall keeps the operator's settings.
      writeFileSync(envFile, "COH_AUTH_TOKEN=mine\n");
      expect(sh([join(dir, "install.sh")], env).out).toContain("kept");
      expect(readFileSync(envFile, "utf8")).toBe("COH_AUTH_TOKEN=mine\n");

      const elf = readFileSync(bin).subarray(0, 20);
      expect(elf.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
      expect(elf.readUInt16LE(18)).toBe(arch === "x64" ? 0x3e : 0xb7); // EM_X86_64 / EM_AARCH64
      if (arch === "x64" && process.arch === "x64") {
        const r = Bun.spawnSync([bin, "--mock", "--list"], { cwd: "/" });
        expect(Buffer.from(r.stdout)).toEqual(readFileSync(FIXTURE));
      }

      const analyze = Bun.which("systemd-analyze");
      if (analyze !== null) {
        const v = sh([analyze, "verify", `--root=${root}`, unit]);
        expect(v.err).not.toMatch(/Unknown (key|section)|Invalid|Missing/);
      }
    });
  });
}
