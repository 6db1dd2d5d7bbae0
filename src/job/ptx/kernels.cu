// Both kernels cover their whole problem from any grid and block, down to one thread
// (grid [1,1,1] x block [1,1,1], as Cohesix's worker-gpu sends): grid-stride loops.
// vadd: c[i] = a[i] + b[i] for every i < n, each thread of the grid taking every stride-th i.
extern "C" __global__ void vadd(const float* a, const float* b, float* c, unsigned int n) {
  unsigned int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  unsigned int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  unsigned int threads = blockDim.x * blockDim.y * blockDim.z;
  unsigned int stride = gridDim.x * gridDim.y * gridDim.z * threads;
  for (unsigned int i = block * threads + thread; i < n; i += stride) c[i] = a[i] + b[i];
}

// matmul: C = A x B for N x N matrices; columns strided over x, rows over y.
extern "C" __global__ void matmul(const float* a, const float* b, float* c, unsigned int n) {
  for (unsigned int row = blockIdx.y * blockDim.y + threadIdx.y; row < n; row += gridDim.y * blockDim.y) {
    for (unsigned int col = blockIdx.x * blockDim.x + threadIdx.x; col < n; col += gridDim.x * blockDim.x) {
      float acc = 0.0f;
      for (unsigned int k = 0; k < n; ++k) acc += a[row * n + k] * b[k * n + col];
      c[row * n + col] = acc;
    }
  }
}
