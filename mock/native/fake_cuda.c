/*
 * A fake libcuda.so.1 for tests: the driver API's real symbol names over the scripted machine
 * in fake_ctl.h, with CUDA's ordinals in a different order from NVML's (as real drivers do).
 * Control keys: cuda_init_error=<code>, count=<n>, jetson=1, cuda_uuid_zero=1.
 */
#include "fake_ctl.h"

enum { SUCCESS = 0, INVALID_VALUE = 1, NOT_INITIALIZED = 3, NO_DEVICE = 100, INVALID_DEVICE = 101 };
static int inited = 0;

int cuInit(unsigned int flags) {
  long e = fake_int("cuda_init_error", 0);
  if (e) return (int)e;
  if (flags != 0) return INVALID_VALUE;
  inited = 1;
  return SUCCESS;
}
int cuDriverGetVersion(int *v) {
  *v = fake_int("jetson", 0) ? 12020 : 12040;
  return SUCCESS;
}
int cuDeviceGetCount(int *count) {
  if (!inited) return NOT_INITIALIZED;
  fake_gpus(count);
  return SUCCESS;
}
static const struct fake_gpu *by_ordinal(int ordinal) {
  int n;
  const struct fake_gpu *all = fake_gpus(&n);
  if (ordinal < 0 || ordinal >= n) return NULL;
  return &all[fake_cuda_to_physical(ordinal, n)];
}
int cuDeviceGet(int *dev, int ordinal) {
  if (!inited) return NOT_INITIALIZED;
  if (by_ordinal(ordinal) == NULL) return INVALID_DEVICE;
  *dev = ordinal;
  return SUCCESS;
}
#define GPU(d) const struct fake_gpu *g = by_ordinal(d); if (!inited) return NOT_INITIALIZED; if (g == NULL) return INVALID_DEVICE
int cuDeviceGetName(char *buf, int len, int d) {
  GPU(d);
  fake_copy(buf, (unsigned)len, g->name);
  return SUCCESS;
}
int cuDeviceGetUuid(unsigned char *uuid, int d) {
  GPU(d);
  if (fake_int("cuda_uuid_zero", 0)) { /* as some virtualised GPUs answer: the join must use PCI */
    memset(uuid, 0, 16);
    return SUCCESS;
  }
  for (int i = 0; i < 16; i++) {
    unsigned int byte;
    sscanf(g->uuid_hex + 2 * i, "%2x", &byte);
    uuid[i] = (unsigned char)byte;
  }
  return SUCCESS;
}
int cuDeviceGetPCIBusId(char *buf, int len, int d) {
  GPU(d);
  snprintf(buf, (size_t)len, "%04x:%02x:%02x.0", g->domain, g->bus, g->device);
  return SUCCESS;
}
int cuDeviceTotalMem_v2(unsigned long long *bytes, int d) {
  GPU(d);
  /* On Jetson the driver reports a share of system memory; the bridge must use MemTotal. */
  *bytes = g->integrated ? 3ull << 30 : g->total_mib << 20;
  return SUCCESS;
}
int cuDeviceGetAttribute(int *value, int attr, int d) {
  GPU(d);
  switch (attr) {
    case 1: *value = 1024; break;
    case 2: case 3: *value = 1024; break;
    case 4: *value = 64; break;
    case 5: *value = 2147483647; break;
    case 6: case 7: *value = 65535; break;
    case 13: *value = 1410000; break;
    case 16: *value = g->sm_count; break;
    case 18: *value = g->integrated; break;
    case 33: *value = (int)g->bus; break;
    case 50: *value = (int)g->domain; break;
    case 75: *value = g->cc_major; break;
    case 76: *value = g->cc_minor; break;
    default: return INVALID_VALUE;
  }
  return SUCCESS;
}
int cuGetErrorName(int code, const char **out) {
  switch (code) {
    case SUCCESS: *out = "CUDA_SUCCESS"; return SUCCESS;
    case NO_DEVICE: *out = "CUDA_ERROR_NO_DEVICE"; return SUCCESS;
    case INVALID_DEVICE: *out = "CUDA_ERROR_INVALID_DEVICE"; return SUCCESS;
    case NOT_INITIALIZED: *out = "CUDA_ERROR_NOT_INITIALIZED"; return SUCCESS;
    default: *out = NULL; return INVALID_VALUE;
  }
}
int cuGetErrorString(int code, const char **out) { return cuGetErrorName(code, out); }
