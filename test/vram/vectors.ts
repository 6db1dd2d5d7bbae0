/** Tree-digest test vectors, computed with Python's hashlib (recursive RFC 6962, 64 KiB leaves). */
import type { ShardSource } from "../../src/vram/shards.ts";
import { LEAF_BYTES } from "../../src/vram/tree.ts";

export const pattern = (n: number) => {
  const d = new Uint8Array(n);
  for (let i = 0; i < n; i++) d[i] = (i * 31 + 7) % 251;
  return d;
};
const K = LEAF_BYTES;
/** [name, bytes, tree digest, flat sha256], computed with Python's hashlib (recursive RFC 6962). */
export const VECTORS: [string, Uint8Array, string, string][] = [
  [
    "1 byte 0x00",
    new Uint8Array([0]),
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  ],
  [
    "abc",
    new TextEncoder().encode("abc"),
    "609f6e36d2405585188d5cfd761f407c7cc46a7d3f314c88270469dde315fcd1",
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  ],
  [
    "pat 55",
    pattern(55),
    "dc23095bad0a0453313cd1387c832805602962880970898dcbbda79ed42a41c4",
    "e40272620990d5f772101e014a0fe168d9ab13215739a04bdcb4b9cadc303c75",
  ],
  [
    "pat 56",
    pattern(56),
    "b17e59e23bd455fa339d4f25cd41c0d5f50d17a167b55529cc60cae503bd9e1d",
    "5b3154594d65c2a11e797576e2b4ece47f48373d8acfc0ae2cc3b87ca7adaedc",
  ],
  [
    "pat 65535",
    pattern(65535),
    "7b52489d5f9715da41935bfe3f3bb2abd24491cec1eb97abc30a3b3398a6f77e",
    "7dad0dd6a5a9d94d5c0af761d89d4def9e9bb415be9838d72700e702eb03b8f9",
  ],
  [
    "pat 65536",
    pattern(65536),
    "1927b3f193f9109e85932dcc745851f45b669763820d1736cf160ac47dd8b560",
    "c2a19b29e9a734066ffb748d00176ca95e52545a0b0afe9e73f085740aeb97f8",
  ],
  [
    "pat 65537",
    pattern(65537),
    "c4348260f539e40252c5066998cacad0e1704fad070751122d1170b44b778d86",
    "186ecbca9e96dd4161bddd2a1b83578f69841c33036c83244c72e9d7ee1fd058",
  ],
  [
    "pat 3*64Ki+5",
    pattern(3 * K + 5),
    "7ecca432ba90f8171a2e48dd8db5ad7cd9e65094e850758eb550661bf4d9525f",
    "254e8247225b259ded38f943fea9426e5bac6c2456f455e59d8757fd9b1d2279",
  ],
  [
    "pat 5*64Ki",
    pattern(5 * K),
    "c3de4d3f3cf86c19b3c42ad764e22f1266e286601fd7ec1ca75cb53d01a75738",
    "b7bb4c3ab30fcea932e1dd7e1fe1608709e10bf0335d87816b0128ad7701365c",
  ],
  [
    "pat 7*64Ki+1",
    pattern(7 * K + 1),
    "22cb8227d3ac5e8ea2e2f33409c4d4ccf75555ca9fffa3f0e32b7f01661b9aae",
    "62b0c89e91ab6a71fc0f33e298f870f7012b36ca1f3149a667e88843e73f6e12",
  ],
];

/** `data` as a seal source, in chunks of `step` bytes, declaring `length` bytes. */
export function source(data: Uint8Array, step = 100_000, length = data.length): ShardSource {
  return {
    length,
    chunks: (async function* () {
      for (let i = 0; i < data.length; i += step) yield data.subarray(i, i + step);
    })(),
  };
}
