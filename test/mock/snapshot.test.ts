import { describe, expect, test } from "bun:test";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace, type Namespace } from "../../src/contract/namespace.ts";
import { TELEMETRY_DESCRIPTOR } from "../../src/contract/telemetry-schema.ts";
import { B64_CHUNK, makeSnapshot, publishLines, renderSnapshot, SnapshotTooLargeError } from "../../src/contract/snapshot.ts";
import { parseSnapshot, SnapshotParseError } from "../../mock/console/snapshot-parse.ts";
import { CtlReceiver } from "../../mock/console/receiver.ts";
import { sha256Hex } from "../../src/util/sha256.ts";

const mockNs = (): Namespace => buildNamespace(MOCK_GPUS, builtinCatalog());
const enc = (s: string) => new TextEncoder().encode(s);

describe("makeSnapshot()", () => {
  test("matches the contract's size and SHA-256 for the mock inventory and built-in catalog", () => {
    const snap = makeSnapshot(mockNs());
    expect(snap.bytes.length).toBe(1477);
    expect(snap.sha256).toBe("704821d10bbd99487459a9df07ce769a6bb2c781c7661a31f0214021ba272e1b");
  });

  test("writes empty payloads as empty values and lines in contract order", () => {
    const lines = renderSnapshot(mockNs()).split("\n");
    expect(lines[0]).toBe("schema gpu-bridge-snapshot/v1");
    expect(lines[1]).toBe(`node id=GPU-0 info=${btoa(mockNs().nodes[0]!.info)} ctl=${btoa("LEASE GPU-0\n")} lease= status=`);
    expect(lines[3]).toStartWith("model id=vision-base-v1 manifest=");
    expect(lines.slice(5)).toEqual(["active id=vision-lora-edge", `telemetry schema=${btoa(TELEMETRY_DESCRIPTOR)}`, "end", ""]);
  });
});

describe("publishLines()", () => {
  test("frames the snapshot as begin, 124-character b64 chunks and end", () => {
    const snap = makeSnapshot(mockNs());
    const lines = publishLines(snap);
    expect(lines[0]).toBe(`begin bytes=1477 sha256=${snap.sha256}`);
    expect(lines.at(-1)).toBe("end");
    const chunks = lines.slice(1, -1);
    expect(chunks.length).toBe(16); // 1970 base64 characters
    for (const c of chunks.slice(0, -1)) expect(c.length).toBe(4 + B64_CHUNK);
    for (const line of lines) expect(new TextEncoder().encode(line).length).toBeLessThanOrEqual(128);
    const decoded = Buffer.from(chunks.map((c) => c.slice(4)).join(""), "base64");
    expect(decoded.length).toBe(1477);
    expect(sha256Hex(decoded)).toBe(snap.sha256);
    expect(parseSnapshot(decoded)).toEqual(mockNs());
  });

  test("refuses a snapshot over the VM's 131072-byte limit before sending anything", () => {
    const ns = mockNs();
    const big = { ...ns, nodes: ns.nodes.map((n) => ({ ...n, info: "x".repeat(70_000) })) };
    expect(() => publishLines(makeSnapshot(big))).toThrow(SnapshotTooLargeError);
  });
});

describe("CtlReceiver", () => {
  test("lands the publish lines and reports status transitions", () => {
    const rx = new CtlReceiver();
    expect(rx.status).toBe("state=idle");
    const snap = makeSnapshot(mockNs());
    const lines = publishLines(snap);
    expect(rx.accept(lines[0]!)).toEqual({ ok: true });
    expect(rx.status).toBe("state=receiving bytes=1477");
    for (const l of lines.slice(1, -1)) expect(rx.accept(l).ok).toBe(true);
    const done = rx.accept("end");
    expect(done.ok && done.tree).toEqual(mockNs());
    expect(rx.status).toBe(`state=ok bytes=1477 sha256=${snap.sha256}`);
  });

  test("a new begin resets a pending transfer", () => {
    const rx = new CtlReceiver();
    const lines = publishLines(makeSnapshot(mockNs()));
    rx.accept(lines[0]!);
    rx.accept(lines[1]!);
    for (const l of lines) expect(rx.accept(l).ok).toBe(true);
    expect(rx.status).toStartWith("state=ok");
  });

  const hash = "a".repeat(64);
  test.each([
    ["b64:QUJD", "b64 data before begin"],
    ["end", "end before begin"],
    ["begin bytes=0 sha256=" + hash, "bytes must be 1-131072, got 0"],
    ["begin bytes=131073 sha256=" + hash, "bytes must be 1-131072, got 131073"],
    ["begin bytes=10 sha256=abc", "sha256 must be 64 hex characters"],
    ["begin bytes=10 sha256=" + hash + " extra=1", 'unknown field "extra"'],
    ["begin bytes=10", "needs bytes and sha256"],
    ["frobnicate", 'unknown command "frobnicate"'],
  ])("refuses %j", (line, reason) => {
    const rx = new CtlReceiver();
    const r = rx.accept(line);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toContain(reason);
    expect(rx.status).toStartWith("state=err reason=");
    expect(rx.status).toContain(reason);
  });

  test("refuses b64 data beyond the announced length, a wrong hash and a wrong length", () => {
    const snap = makeSnapshot(mockNs());
    const lines = publishLines(snap);
    const rx = new CtlReceiver();
    rx.accept(lines[0]!);
    for (const l of lines.slice(1, -1)) rx.accept(l);
    expect(rx.accept("b64:AAAA")).toEqual({ ok: false, reason: "b64 data beyond the expected 1972 characters" });

    rx.accept(`begin bytes=1477 sha256=${"0".repeat(64)}`);
    for (const l of lines.slice(1, -1)) rx.accept(l);
    expect(rx.accept("end")).toEqual({ ok: false, reason: "sha256 mismatch" });

    rx.accept(`begin bytes=3 sha256=${sha256Hex("abc")}`);
    rx.accept("b64:YQ==");
    expect(rx.accept("end")).toEqual({ ok: false, reason: "length mismatch: expected 3 bytes, got 1" });
  });
});

describe("parseSnapshot()", () => {
  const good = renderSnapshot(mockNs());
  const b = (s: string) => btoa(s);
  const reject = (text: string, reason: string) => {
    expect(() => parseSnapshot(enc(text))).toThrow(SnapshotParseError);
    expect(() => parseSnapshot(enc(text))).toThrow(reason);
  };

  test("round-trips the namespace", () => expect(parseSnapshot(enc(good))).toEqual(mockNs()));

  test("refuses a wrong schema line, missing end, trailing content, bad UTF-8", () => {
    reject(good.replace("snapshot/v1", "snapshot/v2"), "first line must be");
    reject(good.replace("end\n", ""), "no 'end' line");
    reject(good + "node id=x\n", "content after 'end'");
    reject(good.slice(0, -1), "does not end with a newline");
    expect(() => parseSnapshot(new Uint8Array([0xff, 0x0a]))).toThrow("not valid UTF-8");
  });

  test("refuses unknown keywords and fields, and missing or duplicate fields", () => {
    reject(good.replace("active id=", "bogus x=1\nactive id="), 'unknown keyword "bogus"');
    reject(good.replace("active id=vision-lora-edge", "active id=vision-lora-edge extra=1"), 'unknown field "extra"');
    reject(good.replace(" status=\n", "\n"), 'lacks field "status"');
    reject(good.replace("active id=vision-lora-edge", "active id=vision-lora-edge id=x"), 'duplicate field "id"');
  });

  test("requires active and telemetry lines, and a listed active model", () => {
    reject(good.replace(/active id=.*\n/, ""), "no 'active' line");
    reject(good.replace(/telemetry schema=.*\n/, ""), "no 'telemetry' line");
    reject(good.replace("active id=vision-lora-edge", "active id=ghost"), 'active model "ghost" is not listed');
    const noModels = `schema gpu-bridge-snapshot/v1\nactive id=\ntelemetry schema=${b("{}")}\nend\n`;
    expect(parseSnapshot(enc(noModels)).models).toEqual([]);
  });

  test("enforces the per-item limits", () => {
    const node = (id: string, lease = "", status = "", ctl = "") =>
      `schema gpu-bridge-snapshot/v1\nnode id=${id} info= ctl=${b(ctl)} lease=${b(lease)} status=${
        b(status)
      }\nactive id=\ntelemetry schema=\nend\n`;
    // Node logs are capped only for the VM's own appends, never in a snapshot (docs/protocol.md section 8).
    expect(parseSnapshot(enc(node("G", "l".repeat(1025), "s".repeat(32 * 1024 + 1), "c".repeat(2000)))).nodes[0]!.lease.length).toBe(1025);
    reject(node("x".repeat(33)), "must be 1-32 bytes, got 33");
    const model = (id: string, manifest = "") =>
      `schema gpu-bridge-snapshot/v1\nmodel id=${id} manifest=${b(manifest)}\nactive id=${id}\ntelemetry schema=\nend\n`;
    reject(model(".."), "must not be '.' or '..'");
    reject(model("m", "m".repeat(8193)), "over the 8192-byte limit");
    reject(model("x".repeat(129)), "must be 1-128 bytes, got 129");
    reject(model("m").replace("telemetry schema=", `telemetry schema=${b("s".repeat(4097))}`), "over the 4096-byte limit");
    reject(model("m").replace("manifest=", "manifest=!!!"), "not valid base64");
  });
});

describe("decodeBase64()", () => {
  test("is strict about padding and alphabet, and linear on large input", async () => {
    const { decodeBase64 } = await import("../../src/util/base64.ts");
    expect(decodeBase64("YWJj")).toEqual(new TextEncoder().encode("abc"));
    expect(decodeBase64("YQ==")).toEqual(new TextEncoder().encode("a"));
    for (const bad of ["YQ=", "Y===", "YQ==YQ==", "YW J", "YWJ\n", "YW-_"]) expect(decodeBase64(bad)).toBeNull();
    const big = Buffer.alloc(12 * 1024 * 1024, 1).toString("base64");
    expect(decodeBase64(big)?.length).toBe(12 * 1024 * 1024);
  });
});
