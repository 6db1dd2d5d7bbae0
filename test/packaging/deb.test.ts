/**
 * The Debian package: `make` builds (or finds up to date) the amd64 .deb, which is unpacked into
 * a throwaway root and checked: control data, owners and modes, the files `make install` lays
 * out, the unit (through systemd-analyze verify), and the maintainer scripts run against stub
 * commands that record what they would do to the system.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { completionScript } from "../../src/cli/completion.ts";
import { manPage } from "../../src/cli/man.ts";
import { VERSION } from "../../src/util/version.ts";
import { FIXTURE, REPO, tempDir } from "../helpers.ts";

const DEB = join(REPO, "dist", `gpu-bridge-host_${VERSION}_amd64.deb`);
const dpkgDeb = Bun.which("dpkg-deb");
const make = Bun.which("make");
const analyze = Bun.which("systemd-analyze");
const missing = [dpkgDeb === null && "dpkg-deb", make === null && "make"].filter(Boolean);
if (missing.length > 0) console.warn(`SKIPPED the Debian package tests: ${missing.join(" and ")} not found (apt-get install dpkg make)`);

let scratch: { path: string; cleanup: () => void };
let root: string;
const sh = (cmd: string[], env: Record<string, string> = {}) => {
  const r = Bun.spawnSync(cmd, { cwd: scratch.path, env: { PATH: process.env.PATH ?? "", ...env } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

beforeAll(() => {
  scratch = tempDir("gbh-deb-");
  root = join(scratch.path, "root");
  if (missing.length > 0) return;
  // Up to date: nothing is rebuilt; otherwise the x64 binary and the stage first (minutes).
  const built = Bun.spawnSync([make!, "-s", `dist/gpu-bridge-host_${VERSION}_amd64.deb`], { cwd: REPO, env: process.env });
  if (built.exitCode !== 0) throw new Error(`make could not build ${DEB}: ${built.stderr.toString()}`);
  expect(sh([dpkgDeb!, "-x", DEB, root]).code).toBe(0);
  expect(sh([dpkgDeb!, "-e", DEB, join(root, "DEBIAN")]).code).toBe(0);
}, 600_000);
afterAll(() => scratch.cleanup());

const mode = (p: string) => statSync(join(root, p)).mode & 0o7777;

describe.skipIf(missing.length > 0)("the amd64 Debian package", () => {
  test("its control data: name, version, architecture, dependencies, the settings as a conffile", () => {
    const control = readFileSync(join(root, "DEBIAN/control"), "utf8");
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(control)?.[1];
    expect(field("Package")).toBe("gpu-bridge-host");
    expect(field("Version")).toBe(VERSION);
    expect(field("Architecture")).toBe("amd64");
    expect(field("Depends")).toMatch(/^libc6 \(>= 2\.\d+\), adduser$/);
    expect(Number(field("Installed-Size"))).toBeGreaterThan(statSync(join(root, "usr/bin/gpu-bridge-host")).size / 1024);
    expect(readFileSync(join(root, "DEBIAN/conffiles"), "utf8")).toBe("/etc/default/gpu-bridge-host\n");
    for (const s of ["postinst", "prerm", "postrm"]) expect(mode(`DEBIAN/${s}`)).toBe(0o755);
  });

  test("every file is root's; the binary, the unit, the settings, the man page and the completions have their modes", () => {
    const listing = sh([dpkgDeb!, "-c", DEB]).out.trim().split("\n");
    expect(listing.filter((l) => !/^\S+ root\/root /.test(l))).toEqual([]);
    expect(mode("usr/bin/gpu-bridge-host")).toBe(0o755);
    expect(mode("etc/default/gpu-bridge-host")).toBe(0o640); // it holds the console token
    for (
      const f of [
        "usr/lib/systemd/system/gpu-bridge-host.service",
        "usr/share/man/man1/gpu-bridge-host.1.gz",
        "usr/share/bash-completion/completions/gpu-bridge-host",
        "usr/share/zsh/vendor-completions/_gpu-bridge-host",
        "usr/share/fish/vendor_completions.d/gpu-bridge-host.fish",
        "usr/share/doc/gpu-bridge-host/copyright",
        "usr/share/doc/gpu-bridge-host/changelog.gz",
      ]
    ) {
      expect({ file: f, mode: mode(f).toString(8) }).toEqual({ file: f, mode: "644" });
    }
  });

  test("the binary is the x86-64 build and lists the mock inventory exactly", () => {
    const bin = join(root, "usr/bin/gpu-bridge-host");
    expect(readFileSync(bin).subarray(0, 20).readUInt16LE(18)).toBe(0x3e); // EM_X86_64
    if (process.arch !== "x64") return;
    const r = Bun.spawnSync([bin, "--mock", "--list"], { cwd: "/" });
    expect(Buffer.from(r.stdout)).toEqual(readFileSync(FIXTURE));
  });

  test("the completions are the generated scripts, and the man page the generated page", () => {
    expect(readFileSync(join(root, "usr/share/bash-completion/completions/gpu-bridge-host"), "utf8")).toBe(completionScript("bash"));
    expect(readFileSync(join(root, "usr/share/zsh/vendor-completions/_gpu-bridge-host"), "utf8")).toBe(completionScript("zsh"));
    expect(readFileSync(join(root, "usr/share/fish/vendor_completions.d/gpu-bridge-host.fish"), "utf8")).toBe(completionScript("fish"));
    const page = gunzipSync(readFileSync(join(root, "usr/share/man/man1/gpu-bridge-host.1.gz"))).toString();
    const date = /^\.TH \S+ 1 (\d{4}-\d{2}-\d{2}) /m.exec(page)?.[1];
    expect(page).toBe(manPage(date!));
    for (const flag of ["--log-format", "--interval-ms", "--cdi-dir"]) {
      expect(page).toContain(`\\-\\-${flag.slice(2).replace(/-/g, "\\-")}`);
    }
  });

  test("the unit runs serve as the system user gpu-bridge, state in /var/lib, on loopback by default", () => {
    const unit = readFileSync(join(root, "usr/lib/systemd/system/gpu-bridge-host.service"), "utf8");
    for (
      const line of [
        "User=gpu-bridge",
        "Group=gpu-bridge",
        "StateDirectory=gpu-bridge-host",
        "EnvironmentFile=-/etc/default/gpu-bridge-host",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "WantedBy=multi-user.target",
      ]
    ) {
      expect(unit).toContain(`\n${line}\n`);
    }
    expect(unit).toContain("ExecStart=/usr/bin/gpu-bridge-host serve ");
    expect(unit).not.toContain("DynamicUser");
    expect(unit).not.toContain("@PREFIX@");
    const settings = readFileSync(join(root, "etc/default/gpu-bridge-host"), "utf8");
    expect(settings).toContain("COH_TCP_HOST=127.0.0.1\n");
    expect(settings).not.toMatch(/^COH_AUTH_TOKEN=/m);
    expect(settings).not.toMatch(/--allow-remote|--listen 0\.0\.0\.0/);
  });

  test.skipIf(analyze === null)("systemd-analyze verify accepts the unit in the unpacked root", () => {
    // The root holds only the package: the host's targets are copied in for After= and WantedBy=.
    const units = join(root, "usr/lib/systemd/system");
    for (const dir of ["/usr/lib/systemd/system", "/lib/systemd/system"]) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)) {
        if (f.endsWith(".target") && !existsSync(join(units, f))) copyFileSync(join(dir, f), join(units, f));
      }
    }
    const v = sh([analyze!, "verify", "--man=no", `--root=${root}`, join(units, "gpu-bridge-host.service")]);
    expect({ code: v.code, err: v.err }).toEqual({ code: 0, err: "" });
  });
  if (analyze === null) console.warn("SKIPPED systemd-analyze verify of the packaged unit: systemd-analyze not found");

  /** Runs a maintainer script with every command that touches the system replaced by a recorder. */
  function runScript(script: string, args: string[], existing: { user?: boolean } = {}) {
    const stubs = join(scratch.path, "stubs");
    const log = join(scratch.path, "calls.log");
    mkdirSync(stubs, { recursive: true });
    writeFileSync(log, "");
    const record = (name: string, body = "") => {
      writeFileSync(join(stubs, name), `#!/bin/sh\necho "${name} $*" >> "${log}"\n${body}\nexit 0\n`);
      chmodSync(join(stubs, name), 0o755);
    };
    for (const c of ["adduser", "useradd", "usermod", "deluser", "userdel", "delgroup", "mkdir", "chown", "chmod", "rm", "systemctl"]) {
      record(c);
    }
    for (const c of ["deb-systemd-helper", "deb-systemd-invoke"]) record(c);
    // getent: the user exists only when asked to; the device groups always do.
    record("getent", `case "$2" in gpu-bridge) ${existing.user ? "exit 0" : "exit 2"};; video|render) exit 0;; esac; exit 2`);
    const r = Bun.spawnSync(["/bin/sh", join(root, "DEBIAN", script), ...args], {
      env: { PATH: `${stubs}:/usr/bin:/bin` },
    });
    return { code: r.exitCode, err: r.stderr.toString(), calls: readFileSync(log, "utf8").trim().split("\n").filter((l) => l !== "") };
  }
  // The scripts start or stop the unit only where systemd runs (/run/systemd/system): what is
  // expected depends on this machine, and is checked either way.
  const systemd = existsSync("/run/systemd/system");

  test("postinst configure creates the system user and the state folder, enables the unit, starts it only under systemd", () => {
    const r = runScript("postinst", ["configure", ""]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.calls).toContain(
      "adduser --system --group --quiet --home /var/lib/gpu-bridge-host --no-create-home --shell /usr/sbin/nologin --gecos Cohesix GPU bridge gpu-bridge",
    );
    expect(r.calls).toContain("usermod -a -G video gpu-bridge");
    expect(r.calls).toContain("chown gpu-bridge:gpu-bridge /var/lib/gpu-bridge-host");
    expect(r.calls).toContain("chmod 0700 /var/lib/gpu-bridge-host");
    expect(r.calls).toContain("deb-systemd-helper enable gpu-bridge-host.service");
    expect(r.calls.includes("deb-systemd-invoke start gpu-bridge-host.service")).toBe(systemd);
    // A reinstall over an existing user makes none.
    expect(runScript("postinst", ["configure", VERSION], { user: true }).calls.filter((c) => c.startsWith("adduser"))).toEqual([]);
  });

  test("prerm stops the unit on removal under systemd; postrm purge removes the state and the user", () => {
    const stop = runScript("prerm", ["remove"]);
    expect(stop.code).toBe(0);
    expect(stop.calls.includes("deb-systemd-invoke stop gpu-bridge-host.service")).toBe(systemd);
    const upgrade = runScript("prerm", ["upgrade", VERSION]);
    expect(upgrade.calls).toEqual([]);

    const remove = runScript("postrm", ["remove"], { user: true });
    expect(remove.calls.filter((c) => c.startsWith("rm") || c.startsWith("deluser"))).toEqual([]); // state kept until purge
    const purge = runScript("postrm", ["purge"], { user: true });
    expect(purge.code).toBe(0);
    expect(purge.calls).toContain("rm -rf /var/lib/gpu-bridge-host /var/lib/private/gpu-bridge-host");
    expect(purge.calls).toContain("deluser --system --quiet gpu-bridge");
    expect(purge.calls).toContain("deb-systemd-helper purge gpu-bridge-host.service");
  });

  test("the arm64 package takes the arm64 build: build.sh refuses a stage whose binary is another machine's", () => {
    const stage = join(REPO, "dist", `gpu-bridge-host-${VERSION}-linux-x64`);
    const r = Bun.spawnSync(["packaging/deb/build.sh", "arm64", stage, join(scratch.path, "wrong.deb")], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "", VERSION, DEB_MAINTAINER: "Test <test@example.org>" },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toContain(`${stage}/gpu-bridge-host is not an arm64 (AArch64) binary`);
    // make deb's arm64 stage is built from build-arm64's output.
    expect(readFileSync(join(REPO, "Makefile"), "utf8")).toContain("binary_of = $(if $(filter arm64,$(1)),$(BIN_ARM64),$(BIN))");
    const arm = join(REPO, "dist", `gpu-bridge-host_${VERSION}_arm64.deb`);
    if (!existsSync(arm)) return console.warn(`not checked: ${arm} is not built (make deb)`);
    const armRoot = join(scratch.path, "arm64");
    expect(sh([dpkgDeb!, "-x", arm, armRoot]).code).toBe(0);
    expect(readFileSync(join(armRoot, "usr/bin/gpu-bridge-host")).subarray(0, 20).readUInt16LE(18)).toBe(0xb7); // EM_AARCH64
    expect(sh([dpkgDeb!, "-f", arm, "Architecture"]).out.trim()).toBe("arm64");
  });
});
