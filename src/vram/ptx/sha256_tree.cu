// The shard tree on the GPU: vram_tree_leaves hashes every 64 KiB leaf in parallel (one thread
// per leaf, grid-stride), then vram_tree_level is launched once per level until one hash is
// left. The per-thread work lives in sha256_tree.h, which the fake libcuda runs too.
#include "sha256_tree.h"

extern "C" __global__ void vram_tree_leaves(const unsigned char* data, unsigned long long len, unsigned char* out,
                                            unsigned int leaves) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < leaves;
       i += (unsigned long long)gridDim.x * blockDim.x)
    tree_leaf(data, len, out, i);
}

extern "C" __global__ void vram_tree_level(const unsigned char* in, unsigned char* out, unsigned int n) {
  unsigned long long parents = (n + 1ull) / 2;
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < parents;
       i += (unsigned long long)gridDim.x * blockDim.x)
    tree_node(in, out, n, i);
}
