/** `gpu-bridge-host audit verify DIR` on the command line: exit 0 on a whole trail, 1 naming the bad record, 2 on a usage error. */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { trailFileName } from "../../src/audit/chain.ts";
import { AuditTrail } from "../../src/audit/trail.ts";
import { ChangeRecord } from "../../src/changes/record.ts";
import { main } from "../../src/main.ts";
import { FakeClock, memoryLogger, memoryStdio, tempFolder } from "../helpers.ts";

async function trailOf(n: number): Promise<string> {
  const dir = join(tempFolder("audit-cli-"), "audit");
  const { log } = memoryLogger();
  const trail = AuditTrail.open({ dir, log, fileBytes: 1024, maxFiles: 10, fsync: "batch" });
  const record = new ChangeRecord({ clock: new FakeClock(0), log, keep: 4 });
  record.on((c) => trail.append(c));
  for (let i = 0; i < n; i++) record.append({ type: "lease.released", lease_id: `lease-${i}`, data: { reason: "released" } });
  await trail.close();
  return dir;
}

describe("audit verify", () => {
  test("a whole trail: exit 0, the count and the last hash", async () => {
    const dir = await trailOf(12);
    const s = memoryStdio();
    expect(await main(["audit", "verify", dir], {}, s.io)).toBe(0);
    expect(s.out.join("")).toMatch(/^OK 12 changes \(1\.\.12\) in \d+ files; last hash [0-9a-f]{64}\n$/);
    const j = memoryStdio();
    expect(await main(["audit", "verify", dir, "--json"], {}, j.io)).toBe(0);
    expect(JSON.parse(j.out.join(""))).toMatchObject({ ok: true, changes: 12, lastId: 12 });
  });

  test("an edited record: exit 1 naming the file and line after it", async () => {
    const dir = await trailOf(3);
    const path = join(dir, trailFileName(1));
    writeFileSync(path, readFileSync(path, "utf8").replace("lease-1", "lease-9"));
    const s = memoryStdio();
    expect(await main(["audit", "verify", dir], {}, s.io)).toBe(1);
    expect(s.out.join("")).toStartWith(`BROKEN ${trailFileName(1)}:3: the chain is broken`);
  });

  test("usage errors and help", async () => {
    const s = memoryStdio();
    expect(await main(["audit", "verify"], {}, s.io)).toBe(2);
    expect(s.err.join("")).toContain("audit verify needs one DIR");
    const h = memoryStdio();
    expect(await main(["audit", "--help"], {}, h.io)).toBe(0);
    expect(h.out.join("")).toContain("gpu-bridge-host audit verify DIR [--json]");
    const missing = memoryStdio();
    expect(await main(["audit", "verify", "/nonexistent/audit"], {}, missing.io)).toBe(1);
    expect(missing.err.join("")).toContain("no such folder");
  });
});
