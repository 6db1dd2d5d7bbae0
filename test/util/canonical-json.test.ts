/** Canonical JSON (src/util/canonical-json.ts): what the audit chain hashes and attestations sign. */
import { describe, expect, test } from "bun:test";
import { canonicalJson, sortKeys } from "../../src/util/canonical-json.ts";

describe("canonicalJson()", () => {
  test("sorts keys at every level, drops undefined members, keeps array order, no spaces", () => {
    const value = { b: 1, a: [{ d: null, c: true }, 2, "x"], u: undefined, z: { y: { x: 1, w: [3, { v: "é", t: -0.5 }] } } };
    expect(canonicalJson(value)).toBe('{"a":[{"c":true,"d":null},2,"x"],"b":1,"z":{"y":{"w":[3,{"t":-0.5,"v":"é"}],"x":1}}}');
  });

  test("an object already in order is written as it is; one with a nested object, an undefined or keys out of order is copied", () => {
    const sorted = { a: 1, b: "two", c: null, d: false };
    expect(sortKeys(sorted)).toBe(sorted);
    for (const o of [{ a: 1, b: { c: 1 } }, { a: 1, b: undefined }, { b: 1, a: 2 }, { a: 1, b: [1] }]) {
      expect(sortKeys(o)).not.toBe(o);
    }
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
    expect(canonicalJson({ b: 1, a: { d: 4, c: 3 } })).toBe('{"a":{"c":3,"d":4},"b":1}');
    expect(canonicalJson({ a: 1, b: [{ d: 1, c: 2 }] })).toBe('{"a":1,"b":[{"c":2,"d":1}]}');
  });

  test("keys are ordered by UTF-16 code units, as RFC 8785 asks", () => {
    expect(canonicalJson({ "é": 1, "Z": 2, "a": 3, "\u{1F600}": 4, "\uFB33": 5 })).toBe('{"Z":2,"a":3,"é":1,"\u{1F600}":4,"\uFB33":5}');
    // Not in order by code units although each pair of neighbours in another order might be.
    const o = { b: 1, a: 2, c: 3 };
    expect(canonicalJson(o)).toBe('{"a":2,"b":1,"c":3}');
  });

  test("a value that is not a plain object is not taken as one: a Date is no object of keys", () => {
    const when = new Date(0);
    expect(sortKeys(when)).not.toBe(when);
    expect(canonicalJson({ when })).toBe('{"when":{}}');
    expect(canonicalJson(null)).toBe("null");
    expect(canonicalJson("s")).toBe('"s"');
    expect(canonicalJson([undefined])).toBe("[null]");
  });
});
