/**
 * The event stream over the record: frames, filters, resume with what was missed announced,
 * heartbeats on the clock, and a client that reads nothing dropped with a last word instead of
 * holding the bridge or growing without bound.
 */
import { describe, expect, test } from "bun:test";
import { ChangeRecord } from "../../src/changes/record.ts";
import { type EventFilter, EventHub, parseTypePatterns, sseFrame, typeMatches } from "../../src/changes/stream.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

const setup = (o: { keep?: number; maxQueued?: number } = {}) => {
  const clock = new FakeClock(Date.UTC(2026, 11, 5));
  const record = new ChangeRecord({ clock, log: memoryLogger().log, keep: o.keep ?? 100 });
  const hub = new EventHub({ record, clock, maxQueued: o.maxQueued ?? 100, heartbeatMs: 15_000 });
  return { clock, record, hub };
};

type Reader = { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> };

/** Reads what the stream has ready now (one pull), as text; "" when it has ended. */
async function readNow(reader: Reader): Promise<string> {
  const r = await reader.read();
  return r.done ? "" : new TextDecoder().decode(r.value);
}

/** A stream's reader, past its opening line (which names the newest change when it opened). */
async function opened(hub: EventHub, filter: EventFilter, after: number | null): Promise<Reader> {
  const reader = hub.open(filter, after).getReader() as Reader;
  expect(await readNow(reader)).toMatch(/^: gpu-bridge-host events; newest change [0-9]+\n\n$/);
  return reader;
}

/** The frames of some SSE text: `{event, id?, data}` with data parsed. */
function frames(text: string): { event: string; id?: number; data: Record<string, unknown> }[] {
  return text.split("\n\n").filter((f) => f.startsWith("event:") || f.startsWith("id:")).map((f) => {
    const field = (name: string) => f.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
    const id = field("id");
    return { event: field("event")!, ...(id !== undefined && { id: Number(id) }), data: JSON.parse(field("data")!) };
  });
}

describe("frames and filters", () => {
  test("a change is one frame: id, event (its type) and data (the change as JSON)", () => {
    const { record } = setup();
    const c = record.append({ type: "lease.granted", lease_id: "L1", gpu_id: "GPU-0", data: { note: "two\nlines" } });
    const text = sseFrame(c);
    expect(text).toBe(`id: 1\nevent: lease.granted\ndata: ${JSON.stringify(c)}\n\n`);
    expect(text.split("\n")).toHaveLength(5); // a newline in the data stays escaped inside the one data line
  });

  test("type patterns: exact, prefix.*, *; one matching nothing is refused naming it and the types", () => {
    expect(typeMatches("lease.*", "lease.expired")).toBe(true);
    expect(typeMatches("lease.*", "leases.x")).toBe(false);
    expect(typeMatches("*", "gpu.health")).toBe(true);
    expect(typeMatches("model.activated", "model.activated")).toBe(true);
    expect(parseTypePatterns(" model.* , lease.granted ")).toEqual({ patterns: ["model.*", "lease.granted"] });
    const bad = parseTypePatterns("lease.*,leese.*");
    expect("error" in bad && bad.error).toMatch(/^types: "leese\.\*" matches no event type; the types are lease\.granted, /);
    expect(parseTypePatterns(" , ")).toEqual({ error: expect.stringContaining("at least one") });
  });

  test("a client gets only the types and the lease it asked for", async () => {
    const { record, hub } = setup();
    const reader = await opened(hub, { types: ["lease.*", "job.state"], lease: "L1" }, null);
    record.append({ type: "lease.granted", lease_id: "L2" });
    record.append({ type: "model.activated", data: { model_id: "m" } });
    record.append({ type: "lease.granted", lease_id: "L1" });
    record.append({ type: "job.state", lease_id: "L1", data: { state: "OK" } });
    const got = frames(await readNow(reader));
    expect(got.map((f) => [f.id, f.event])).toEqual([[3, "lease.granted"], [4, "job.state"]]);
    await reader.cancel();
    expect(hub.clients).toBe(0);
  });
});

describe("resume", () => {
  test("Last-Event-ID: the kept changes after it first, then new ones, none twice", async () => {
    const { record, hub } = setup();
    for (let i = 0; i < 5; i++) record.append({ type: "lease.granted", lease_id: `L${i}` });
    const reader = await opened(hub, { types: null, lease: null }, 3);
    record.append({ type: "lease.expired", lease_id: "L0" });
    expect(frames(await readNow(reader)).map((f) => f.id)).toEqual([4, 5, 6]);
    await reader.cancel();
  });

  test("what is no longer kept is announced before anything else, with the ids and what to do", async () => {
    const { record, hub } = setup({ keep: 3 });
    for (let i = 0; i < 10; i++) record.append({ type: "lease.granted", lease_id: `L${i}` });
    const reader = await opened(hub, { types: null, lease: null }, 2);
    const got = frames(await readNow(reader));
    expect(got[0]).toEqual({
      event: "stream.gap",
      data: { type: "stream.gap", from: 3, to: 7, why: "evicted", message: expect.stringContaining("must be read again") },
    });
    expect(got.slice(1).map((f) => f.id)).toEqual([8, 9, 10]);
    await reader.cancel();
  });

  test("an id this bridge never gave (another run's) is announced, not silently ignored", async () => {
    const { record, hub } = setup();
    record.append({ type: "lease.granted", lease_id: "L" });
    const reader = await opened(hub, { types: null, lease: null }, 900);
    const got = frames(await readNow(reader));
    expect(got).toEqual([{ event: "stream.gap", data: expect.objectContaining({ from: 2, to: 900, why: "unknown_id" }) }]);
    await reader.cancel();
  });

  test("a filtered resume still announces the gap", async () => {
    const { record, hub } = setup({ keep: 2 });
    for (let i = 0; i < 5; i++) record.append({ type: "gpu.health", gpu_id: `GPU-${i}` });
    const reader = await opened(hub, { types: ["lease.*"], lease: null }, 1);
    expect(frames(await readNow(reader)).map((f) => f.event)).toEqual(["stream.gap"]);
    await reader.cancel();
  });
});

describe("slow and idle clients", () => {
  test("a client that reads nothing is dropped at maxQueued: one last event says why and where to resume", async () => {
    const { record, hub } = setup({ maxQueued: 8 });
    const reader = await opened(hub, { types: null, lease: null }, null);
    record.append({ type: "lease.granted", lease_id: "first" });
    expect(frames(await readNow(reader)).map((f) => f.id)).toEqual([1]);
    // Now it stops reading: 8 wait, the 9th drops it; later changes are not queued for it.
    for (let i = 0; i < 50; i++) record.append({ type: "lease.granted", lease_id: `L${i}` });
    expect(hub.dropped).toBe(1);
    expect(hub.clients).toBe(0);
    const last = frames(await readNow(reader));
    expect(last).toEqual([{
      event: "stream.dropped",
      data: { type: "stream.dropped", reason: expect.stringContaining("fell 8 events behind"), resume_after: 1 },
    }]);
    expect(last[0]!.data.reason).toContain("Last-Event-ID: 1");
    expect(await reader.read()).toEqual({ done: true, value: undefined });
    // Resuming where it said gets the changes it missed.
    const again = await opened(hub, { types: null, lease: null }, 1);
    expect(frames(await readNow(again)).map((f) => f.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
    await again.cancel();
  });

  test("changes that come while the client is reading are delivered together at its next read", async () => {
    const { record, hub } = setup({ maxQueued: 8 });
    const reader = await opened(hub, { types: null, lease: null }, null);
    const pending = reader.read();
    record.append({ type: "lease.granted", lease_id: "a" });
    const first = await pending;
    expect(frames(new TextDecoder().decode(first.value)).map((f) => f.id)).toEqual([1]);
    for (let i = 0; i < 8; i++) record.append({ type: "lease.granted", lease_id: `b${i}` });
    expect(hub.dropped).toBe(0);
    expect(frames(await readNow(reader))).toHaveLength(8);
    await reader.cancel();
  });

  test("an idle stream gets a comment every heartbeat, on the clock; none once closed", async () => {
    const { clock, hub } = setup();
    const reader = await opened(hub, { types: null, lease: null }, null);
    clock.advance(14_999);
    const pending = reader.read();
    clock.advance(1);
    expect(new TextDecoder().decode((await pending).value)).toBe(": keep-alive\n\n");
    await reader.cancel();
    expect(clock.pending).toBe(0);
  });
});
