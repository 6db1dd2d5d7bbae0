/** The built-in model catalog (docs/protocol.md#5-model-registry), used when no usable registry is given. */
import type { ModelCatalog } from "../contract/models.ts";

const VISION_BASE = `[model]
id = "vision-base-v1"
source = "s3://artifacts/models/vision-base-v1/"
format = "gguf"

[metadata]
tokens = 4096
owner = "mlops"
activation = "cold-reload"`;

const VISION_LORA = `[model]
id = "vision-lora-edge"
base = "vision-base-v1"
lora = "s3://artifacts/models/lora/edge-pack-01/"
format = "gguf+lora"

[metadata]
tokens = 4096
owner = "mlops"
activation = "hot-swap"`;

/** A fresh copy of the built-in catalog; active is `vision-lora-edge`. */
export function builtinCatalog(): ModelCatalog {
  return {
    source: "builtin",
    active: "vision-lora-edge",
    models: [
      { model_id: "vision-base-v1", manifest_toml: VISION_BASE },
      { model_id: "vision-lora-edge", manifest_toml: VISION_LORA },
    ],
  };
}
