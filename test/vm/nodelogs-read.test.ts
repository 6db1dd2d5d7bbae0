/**
 * `VmSync.nodeLogs()` serves the API (`GET /v1/snapshot`, `GET /v1/gpus/{id}`): a read that
 * changes nothing. The ctl seed line it shows is recorded by prepare(), on the publish path,
 * before a snapshot carries it.
 */
import { describe, expect, test } from "bun:test";
import { seedCtl } from "../../src/contract/info.ts";
import { VmMirror } from "../../src/vm/mirror.ts";
import type { MirrorPersistence } from "../../src/vm/store.ts";
import { VmSync } from "../../src/vm/sync.ts";
import { memoryLogger } from "../helpers.ts";

const status = '{"job":"job-1","state":"OK","detail":"completed"}';

function sync() {
  const mirror = new VmMirror();
  mirror.own("GPU-0", "status", status);
  const saves: string[] = [];
  const persist: MirrorPersistence = {
    changed: () => void saves.push("changed"),
    flush: () => void saves.push("flush"),
    sending: () => void saves.push("sending"),
  };
  return { mirror, saves, vm: new VmSync({ mirror, log: memoryLogger().log, persist }) };
}

describe("VmSync.nodeLogs() is a read", () => {
  test("serving a GPU's logs changes neither the mirror nor what is saved", () => {
    const { mirror, saves, vm } = sync();
    const before = JSON.stringify(mirror.toJSON());
    const logs = vm.nodeLogs("GPU-0");
    vm.nodeLogs("GPU-1");
    expect(logs).toEqual({ ctl: seedCtl("GPU-0"), lease: "", status: status + "\n" });
    expect(JSON.stringify(mirror.toJSON())).toBe(before);
    expect(saves).toEqual([]);
  });

  test("the seed it shows is what prepare() records, so a snapshot carries and keeps the same text", () => {
    const { mirror, vm } = sync();
    const shown = vm.nodeLogs("GPU-0");
    vm.prepare(["GPU-0"]);
    expect(mirror.toJSON().files["GPU-0/ctl"]!.lines).toEqual([{ text: seedCtl("GPU-0").trimEnd(), own: true }]);
    expect(vm.nodeLogs("GPU-0")).toEqual(shown);
  });

  test("a ctl whose lines were all compacted away is not seeded again", () => {
    const { mirror, vm } = sync();
    mirror.own("GPU-0", "ctl", "RESET");
    mirror.acked(mirror.pending().find((p) => p.text === "RESET")!);
    mirror.compact("GPU-0", "ctl", 0);
    expect(vm.nodeLogs("GPU-0").ctl).toBe("");
  });
});
