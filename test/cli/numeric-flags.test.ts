/** Numbers on the command line: a negative or fractional value is refused saying what is wanted. */
import { describe, expect, test } from "bun:test";
import { commandCatalog } from "../../src/cli/catalog.ts";
import { parseCommand } from "../../src/cli/options.ts";

describe("integer flags", () => {
  test("every one of every command refuses -5 saying it needs a positive (or non-negative) integer, naming flag and value", () => {
    let seen = 0;
    for (const e of commandCatalog()) {
      for (const [flag, spec] of Object.entries(e.flags)) {
        if (!spec.startsWith("int:")) continue;
        seen++;
        const [, min, max] = spec.split(":");
        const kind = Number(min) >= 1 ? "a positive integer" : "a non-negative integer";
        expect(() => parseCommand([...e.path, `--${flag}`, "-5"], {})).toThrow(`Option --${flag} needs ${kind} (${min}-${max}), got "-5"`);
        expect(() => parseCommand([...e.path, `--${flag}`, "1.5"], {})).toThrow(
          `Option --${flag} needs ${kind} (${min}-${max}), got "1.5"`,
        );
      }
    }
    expect(seen).toBeGreaterThan(20);
  });

  test("telemetry export --since takes epoch ms or an RFC 3339 time, and refuses -5 rather than reading it as a year", () => {
    const since = (t: string) => {
      const c = parseCommand(["telemetry", "export", "--out", "x", "--since", t], {});
      return c.kind === "telemetry-export" ? c.sinceMs : null;
    };
    expect(since("1700000000000")).toBe(1700000000000);
    expect(since("2026-01-02T03:04:05Z")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(since("2026-01-02")).toBe(Date.UTC(2026, 0, 2));
    for (const bad of ["-5", "5.5", "yesterday", "2026-13-01"]) {
      expect(() => since(bad)).toThrow(`Option --since needs epoch milliseconds or an RFC 3339 time, got ${JSON.stringify(bad)}`);
    }
  });
});
