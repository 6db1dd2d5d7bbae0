import { expect, test } from "bun:test";
import { createLogger } from "../../src/util/log.ts";

test("createLogger() masks a secret where it stands alone, and only there", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", write: (l) => lines.push(l), secrets: ["t", "s3cr.t+token"] });
  log.info("AUTH t echoed; the token t is short");
  log.warn("got AUTH s3cr.t+token from the peer");
  expect(lines[0]).toContain("AUTH *** echoed; the token *** is short");
  expect(lines[1]).toContain("got AUTH *** from the peer");
  expect(lines[1]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z WARN  bridge: /);
});
