// vadd: one thread per element over the whole grid; matmul: C = A x B for N x N matrices,
// N = gridDim.x * blockDim.x columns, rows covered by a grid-stride loop.
extern "C" __global__ void vadd(const float* a, const float* b, float* c, unsigned int n) {
  unsigned int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  unsigned int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  unsigned int i = block * (blockDim.x * blockDim.y * blockDim.z) + thread;
  if (i < n) c[i] = a[i] + b[i];
}

extern "C" __global__ void matmul(const float* a, const float* b, float* c, unsigned int n) {
  unsigned int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= n) return;
  for (unsigned int row = blockIdx.y * blockDim.y + threadIdx.y; row < n; row += gridDim.y * blockDim.y) {
    float acc = 0.0f;
    for (unsigned int k = 0; k < n; ++k) acc += a[row * n + k] * b[k * n + col];
    c[row * n + col] = acc;
  }
}
