/** Leases of MIG devices: named by UUID instead of a GPU, held alone, kept across a restart. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { LeaseJournal } from "../../src/lease/journal.ts";
import { LeaseManager } from "../../src/lease/manager.ts";
import { refusal, requests } from "./helpers.ts";
import { FakeClock, tempFolder } from "../helpers.ts";

const MIG_A = "MIG-99999999-8888-7777-6666-55554444bbb1";
const MIG_B = "MIG-99999999-8888-7777-6666-55554444bbb2";
const gpus = [{ id: "GPU-0", memory_mb: 40960 }, { id: "GPU-1", memory_mb: 81559 }];
const migs = new Map([[MIG_A, "GPU-1"], [MIG_B, "GPU-1"]]);
const req = requests({ gpu_id: MIG_A });
const manager = (o: { migDevices?: () => ReadonlyMap<string, string>; clock?: FakeClock } = { migDevices: () => migs }) =>
  new LeaseManager({ gpus: () => gpus, clock: o.clock ?? new FakeClock(), ...o });

describe("MIG leases", () => {
  test("a MIG device named by its UUID is leased on its GPU, and the lease says which device it holds", () => {
    const m = manager();
    const l = m.grant(req());
    expect(l.gpu_id).toBe("GPU-1");
    expect(l.mig_uuid).toBe(MIG_A);
    expect(m.live("GPU-1").map((x) => x.id)).toEqual([l.id]);
    // The other MIG device of the same GPU is free.
    expect(m.grant(req({ gpu_id: MIG_B })).mig_uuid).toBe(MIG_B);
    // A whole-GPU lease elsewhere is untouched by MIG.
    expect(m.grant(req({ gpu_id: "GPU-0" })).mig_uuid).toBeUndefined();
  });

  test("an unknown MIG UUID is a 404 naming the field and the devices this host has", () => {
    expect(refusal(() => manager().grant(req({ gpu_id: "MIG-00000000-0000-0000-0000-000000000000" })))).toEqual({
      code: "not_found",
      message: `Unknown MIG device "MIG-00000000-0000-0000-0000-000000000000": this host's are ${MIG_A}, ${MIG_B}`,
      field: "gpu_id",
    });
    expect(refusal(() => manager({ migDevices: () => new Map() }).grant(req())).message).toContain("no GPU here has MIG devices");
    expect(refusal(() => manager({}).grant(req())).message).toContain("serve --cdi-dir");
  });

  test("a MIG device held by a live lease is taken (409, naming the holder); free again once it ends", () => {
    const clock = new FakeClock();
    const m = manager({ migDevices: () => migs, clock });
    const first = m.grant(req({ ttl_s: 10 }));
    const r = refusal(() => m.grant(req()));
    expect(r.code).toBe("conflict");
    expect(r.field).toBe("gpu_id");
    expect(r.message).toBe(`MIG device ${MIG_A} is taken: lease ${first.id} holds it (until ${new Date(first.expires_at).toISOString()})`);
    m.release(first.id);
    const second = m.grant(req({ ttl_s: 10 }));
    clock.advance(10_000); // expiry frees it too
    expect(second.state).toBe("RELEASED");
    expect(m.grant(req()).mig_uuid).toBe(MIG_A);
  });

  test("a GPU is leased whole or by MIG devices, never both at once", () => {
    const m = manager();
    const mig = m.grant(req());
    const whole = refusal(() => m.grant(req({ gpu_id: "GPU-1" })));
    expect(whole.code).toBe("conflict");
    expect(whole.message).toContain(`GPU-1 is split into MIG devices and lease ${mig.id} holds ${MIG_A}`);
    m.release(mig.id);
    const w = m.grant(req({ gpu_id: "GPU-1" }));
    const r = refusal(() => m.grant(req({ gpu_id: MIG_B })));
    expect(r.code).toBe("conflict");
    expect(r.message).toContain(`GPU-1, the GPU of MIG device ${MIG_B}, is leased whole by lease ${w.id}`);
  });

  test("a MIG lease survives a restart through the journal; a second claim on the same device is refused", () => {
    const dir = tempFolder("mig-journal-");
    const journal = new LeaseJournal(join(dir, "leases.jsonl"));
    const clock = new FakeClock();
    const m = manager({ migDevices: () => migs, clock });
    const l = m.grant(req());
    journal.grant(l);
    journal.grant({ ...l, id: "other", worker_id: "other" }); // the same device, written by hand
    journal.close();
    const loaded = new LeaseJournal(join(dir, "leases.jsonl")).load();
    expect(loaded.problems).toEqual([]);
    expect(loaded.leases.map((x) => x.mig_uuid)).toEqual([MIG_A, MIG_A]);
    const after = manager({ migDevices: () => migs, clock });
    const r = after.restore(loaded.leases);
    expect(r.restored.map((x) => [x.id, x.mig_uuid])).toEqual([[l.id, MIG_A]]);
    expect(r.refused.map((x) => x.why)).toEqual([`MIG device ${MIG_A} is taken: lease ${l.id} holds it`]);
    expect(refusal(() => after.grant(req())).code).toBe("conflict");
  });

  test("a journal line with a mig_uuid that is no MIG UUID is refused", () => {
    const dir = tempFolder("mig-journal-");
    const path = join(dir, "leases.jsonl");
    const j = new LeaseJournal(path);
    const l = manager().grant(req());
    j.grant({ ...l, mig_uuid: "GPU-1\nLEASE x" });
    j.close();
    const loaded = new LeaseJournal(path).load();
    expect(loaded.leases).toEqual([]);
    expect(loaded.problems.join("")).toContain("mig_uuid");
  });
});
