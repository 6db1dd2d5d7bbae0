import { describe, expect, test } from "bun:test";
import { ConsoleError } from "../../src/console/errors.ts";
import { ConsoleSession, MAX_REPLY_BYTES } from "../../src/console/session.ts";
import { Publisher } from "../../src/console/publisher.ts";
import { MOCK_GPUS } from "../../src/inventory/mock.ts";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { buildNamespace } from "../../src/contract/namespace.ts";
import { makeSnapshot } from "../../src/contract/snapshot.ts";
import { memoryLogger, until } from "../helpers.ts";
import { scriptedConsole } from "./scripted-conn.ts";

describe("a console that never ends a CAT reply cannot hold a session", () => {
  test("the session gives up once the reply passes its bound, long before the deadline", async () => {
    const line = "x".repeat(1000);
    const fake = scriptedConsole((l, _c, push) => {
      if (!l.startsWith("CAT ")) return;
      push("OK CAT path=/queen/x data=x");
      for (let i = 0; i < 2000; i++) push(line); // 2 MB and no END
    });
    const session = new ConsoleSession(await fake.connect("h", 1), { ackTimeoutMs: 30_000 });
    const t0 = performance.now();
    const err = await session.requestLines("CAT /queen/x", "CAT").catch((e) => e);
    expect(err).toBeInstanceOf(ConsoleError);
    expect(err.kind).toBe("protocol");
    expect(err.message).toContain(`${MAX_REPLY_BYTES}`);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(session.closed).toBe(true);
  });
});

describe("a refused handshake ends the connection", () => {
  for (const refused of ["AUTH", "ATTACH"]) {
    test(`after ERR ${refused} on a link the console keeps open, nothing is published on it and the next try is a new connection`, async () => {
      const fake = scriptedConsole((l, conn, push) => {
        const verb = l.split(" ")[0]!;
        if (conn === 0 && verb === refused) push(`ERR ${verb} reason=denied`);
        else push(`OK ${verb}`);
      });
      const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
      const { log, lines } = memoryLogger();
      const publisher = new Publisher({
        connect: fake.connect,
        target: { host: "h", port: 1, token: "t0ken", ticket: "" },
        snapshot: () => Promise.resolve(snap),
        log,
        intervalMs: 60_000,
        backoff: { baseMs: 20, capMs: 40 },
        random: () => 0.5,
      });
      void publisher.start();
      await until(() => publisher.stats.publishes >= 1, 5000, "a publish");
      await publisher.stop();
      const first = fake.connections[0]!;
      expect(first.some((l) => l.startsWith("ECHO"))).toBe(false);
      // AUTH and ATTACH share the console window, so ATTACH is on the wire before ERR AUTH comes
      // back; nothing follows them on that connection.
      expect(first.map((l) => l.split(" ")[0])).toEqual(["AUTH", "ATTACH"]);
      expect(fake.connections.length).toBeGreaterThanOrEqual(2);
      expect(fake.connections[1]![0]).toBe("AUTH t0ken");
      expect(lines.some((l) => l.includes("reconnecting in"))).toBe(true);
    });
  }

  test("the console state is connected again after a retried publish succeeds", async () => {
    let refusedOnce = false;
    const fake = scriptedConsole((l, _conn, push) => {
      const verb = l.split(" ")[0]!;
      if (verb === "ECHO" && !refusedOnce) {
        refusedOnce = true;
        push("ERR ECHO reason=busy");
      } else push(`OK ${verb}`);
    });
    const snap = makeSnapshot(buildNamespace(MOCK_GPUS, builtinCatalog()));
    const publisher = new Publisher({
      connect: fake.connect,
      target: { host: "h", port: 1, token: "t", ticket: "" },
      snapshot: () => Promise.resolve(snap),
      log: memoryLogger().log,
      intervalMs: 60_000,
      backoff: { baseMs: 10, capMs: 20 },
      random: () => 0.5,
    });
    void publisher.start();
    await until(() => publisher.stats.publishes >= 1, 5000, "a publish");
    expect(publisher.stats.failures).toBe(1);
    expect(publisher.stats.state).toBe("connected");
    await publisher.stop();
  });
});
