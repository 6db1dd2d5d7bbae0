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
