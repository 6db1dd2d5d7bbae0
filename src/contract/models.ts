/** One model the VM sees under `/gpu/models`. */
export interface ModelEntry {
  readonly model_id: string;
  /** The manifest text, verbatim. */
  readonly manifest_toml: string;
}

/** The models and the active pointer, and where they came from. */
export interface ModelCatalog {
  readonly source: "builtin" | "registry";
  readonly active: string;
  readonly models: readonly ModelEntry[];
}

/** Byte limits the VM enforces on models (docs/protocol.md#5-model-registry, #8-the-console). */
export const MAX_MANIFEST_BYTES = 8192;
export const MAX_MODEL_ID_BYTES = 128;
