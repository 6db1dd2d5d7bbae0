import { describe, expect, test } from "bun:test";
import { builtinCatalog } from "../../src/models/catalog.ts";
import { activeModelOf } from "../../src/telemetry/record.ts";

const catalog = (manifest: string) => ({ active: "m", models: [{ model_id: "m", manifest_toml: manifest }] });

describe("activeModelOf()", () => {
  test("an adapter (a [model] with base) is the LoRA of its base model", () => {
    expect(activeModelOf(builtinCatalog())).toEqual({ model_id: "vision-base-v1", lora_id: "vision-lora-edge" });
  });

  test("reads base from the [model] table, whatever TOML string form it takes", () => {
    expect(activeModelOf(catalog("[model]\nid = 'm'\nbase = 'b-literal'\n"))).toEqual({ model_id: "b-literal", lora_id: "m" });
    expect(activeModelOf(catalog('[model]\nbase="b-tight" # comment\n'))).toEqual({ model_id: "b-tight", lora_id: "m" });
    expect(activeModelOf(catalog('model.base = "b-dotted"\n'))).toEqual({ model_id: "b-dotted", lora_id: "m" });
  });

  test("a base key in another table does not make a model an adapter", () => {
    expect(activeModelOf(catalog('[model]\nid = "m"\n\n[metadata]\nbase = "not-a-parent"\n'))).toEqual({ model_id: "m" });
  });

  test("a manifest that is not valid TOML is taken as a plain model", () => {
    expect(activeModelOf(catalog("[model\nbase = "))).toEqual({ model_id: "m" });
  });
});
