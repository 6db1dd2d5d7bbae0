/**
 * An API answer to a change comes only once the change's records are in the audit trail's file:
 * trackChanging waits for the record's `written()` (the trail's worker, in batch mode).
 */
import { expect, test } from "bun:test";
import { Hono } from "hono";
import { trackChanging } from "../../src/api/requests.ts";
import { ChangeRecord } from "../../src/changes/record.ts";
import { FakeClock, memoryLogger } from "../helpers.ts";

test("the answer waits for the record's barrier", async () => {
  const { log } = memoryLogger();
  const changes = new ChangeRecord({ clock: new FakeClock(0), log, keep: 8 });
  let release!: () => void;
  let waited = 0;
  changes.barrier(() => {
    waited++;
    return new Promise((resolve) => (release = resolve));
  });
  const app = new Hono();
  app.post(
    "/x",
    trackChanging({ route: "POST /x", log, changes, answer: () => new Response("no", { status: 500 }) }, () => "p", (c) => c.text("ok")),
  );
  let answered = false;
  const res = Promise.resolve(app.request("/x", { method: "POST" })).then((r) => ((answered = true), r));
  await new Promise((r) => setTimeout(r, 20));
  expect(waited).toBe(1);
  expect(answered).toBe(false);
  release();
  expect((await res).status).toBe(200);
  expect(changes.lastId).toBe(1);
});
