// cbor-x loads its native string extractor inside a try/catch and falls back to pure JavaScript
// when it throws. gpu-bridge-host wants that fallback everywhere (the addon corrupts strings under
// Bun), so this stand-in throws.
throw new Error("cbor-extract is deliberately not installed by gpu-bridge-host");
