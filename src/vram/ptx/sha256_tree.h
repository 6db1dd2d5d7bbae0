/*
 * The shard tree (sha256-tree-64KiB: RFC 6962 prefixes, 64 KiB leaves) as per-thread work, shared
 * by the CUDA kernel (sha256_tree.cu, compiled to sha256_tree.ptx) and by the fake libcuda, which
 * includes this file as plain C and runs the same functions for every thread of a launch. Hashes
 * are stored as 32 bytes, big-endian words, exactly as SHA-256 prints them.
 */
#ifndef SHA256_TREE_H
#define SHA256_TREE_H
#include <stdint.h>

#ifdef __CUDACC__
#define TREE_FN __host__ __device__ static inline
#define TREE_UNROLL _Pragma("unroll")
#else
#define TREE_FN static inline
#define TREE_UNROLL
#endif

#define TREE_LEAF_BYTES 65536ull

TREE_FN uint32_t tree_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* One SHA-256 compression of the 16 big-endian words `w` into `st`. */
TREE_FN void tree_compress(uint32_t st[8], uint32_t w[16]) {
  const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};
  uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
  TREE_UNROLL
  for (int i = 0; i < 64; i++) {
    uint32_t wi;
    if (i < 16) {
      wi = w[i];
    } else {
      uint32_t w15 = w[(i + 1) & 15], w2 = w[(i + 14) & 15];
      uint32_t s0 = tree_rotr(w15, 7) ^ tree_rotr(w15, 18) ^ (w15 >> 3);
      uint32_t s1 = tree_rotr(w2, 17) ^ tree_rotr(w2, 19) ^ (w2 >> 10);
      wi = w[i & 15] + s0 + w[(i + 9) & 15] + s1;
      w[i & 15] = wi;
    }
    uint32_t t1 = h + (tree_rotr(e, 6) ^ tree_rotr(e, 11) ^ tree_rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + wi;
    uint32_t t2 = (tree_rotr(a, 2) ^ tree_rotr(a, 13) ^ tree_rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h;
}

TREE_FN void tree_init(uint32_t st[8]) {
  st[0] = 0x6a09e667u; st[1] = 0xbb67ae85u; st[2] = 0x3c6ef372u; st[3] = 0xa54ff53au;
  st[4] = 0x510e527fu; st[5] = 0x9b05688cu; st[6] = 0x1f83d9abu; st[7] = 0x5be0cd19u;
}

TREE_FN void tree_store(const uint32_t st[8], uint8_t *out) {
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(st[i] >> 24); out[4 * i + 1] = (uint8_t)(st[i] >> 16);
    out[4 * i + 2] = (uint8_t)(st[i] >> 8); out[4 * i + 3] = (uint8_t)st[i];
  }
}

/*
 * Byte `m` of the padded leaf message 0x00 ‖ data[0..len) ‖ 0x80 ‖ 0… ‖ bitlength, for a
 * message of `total` padded bytes.
 */
TREE_FN uint32_t tree_leaf_byte(const uint8_t *data, uint64_t len, uint64_t m, uint64_t total) {
  uint64_t msg = len + 1;
  if (m == 0) return 0x00;
  if (m < msg) return data[m - 1];
  if (m == msg) return 0x80;
  if (m >= total - 8) return (uint32_t)(((msg * 8) >> (8 * (total - 1 - m))) & 0xff);
  return 0;
}

/*
 * Leaf `i` of the shard at `data` (`len` bytes): SHA-256(0x00 ‖ leaf) into out[32*i..].
 * Message word m..m+3 is data[m-1..m+2]: inside the leaf it comes from two aligned 32-bit loads
 * (the allocation and every leaf start are 4-byte aligned); the first word and the tail go byte
 * by byte, so no load reaches past the shard.
 */
TREE_FN void tree_leaf(const uint8_t *data, uint64_t len, uint8_t *out, uint64_t i) {
  uint64_t off = i * TREE_LEAF_BYTES;
  uint64_t n = len - off < TREE_LEAF_BYTES ? len - off : TREE_LEAF_BYTES;
  const uint8_t *leaf = data + off;
  const uint32_t *words = (const uint32_t *)leaf;
  uint64_t total = ((n + 1 + 1 + 8 + 63) / 64) * 64; /* prefix, data, 0x80, 64-bit length */
  uint32_t st[8], w[16];
  tree_init(st);
  for (uint64_t block = 0; block < total; block += 64) {
    TREE_UNROLL
    for (int k = 0; k < 16; k++) {
      uint64_t m = block + 4 * (uint64_t)k;
      if (m >= 4 && m + 4 <= n) {
        uint32_t lo = words[m / 4 - 1], hi = words[m / 4];
        w[k] = (lo & 0xff000000u) | ((hi & 0xffu) << 16) | (hi & 0xff00u) | ((hi >> 16) & 0xffu);
      } else {
        w[k] = (tree_leaf_byte(leaf, n, m, total) << 24) | (tree_leaf_byte(leaf, n, m + 1, total) << 16) |
               (tree_leaf_byte(leaf, n, m + 2, total) << 8) | tree_leaf_byte(leaf, n, m + 3, total);
      }
    }
    tree_compress(st, w);
  }
  tree_store(st, out + 32 * i);
}

/*
 * Node `i` of the next level over `n` hashes at `in`: SHA-256(0x01 ‖ in[2i] ‖ in[2i+1]), or
 * in[2i] unchanged when it has no right neighbour.
 */
TREE_FN void tree_node(const uint8_t *in, uint8_t *out, uint64_t n, uint64_t i) {
  const uint8_t *l = in + 64 * i;
  if (2 * i + 1 >= n) {
    for (int k = 0; k < 32; k++) out[32 * i + k] = l[k];
    return;
  }
  uint8_t msg[128];
  msg[0] = 0x01;
  for (int k = 0; k < 64; k++) msg[1 + k] = l[k];
  msg[65] = 0x80;
  for (int k = 66; k < 126; k++) msg[k] = 0;
  msg[126] = (uint8_t)(520 >> 8); msg[127] = (uint8_t)(520 & 0xff);
  uint32_t st[8], w[16];
  tree_init(st);
  for (int block = 0; block < 128; block += 64) {
    TREE_UNROLL
    for (int k = 0; k < 16; k++) {
      const uint8_t *p = msg + block + 4 * k;
      w[k] = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    }
    tree_compress(st, w);
  }
  tree_store(st, out + 32 * i);
}
#endif
