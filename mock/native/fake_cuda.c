/*
 * A fake libcuda.so.1 for tests: the driver API's real symbol names over the scripted machine
 * in fake_ctl.h, with CUDA's ordinals in a different order from NVML's (as real drivers do).
 * Control keys: cuda_init_error=<code>, count=<n>, jetson=1|2|3 (Orin, Xavier, Nano), cuda_uuid_zero=1,
 * cuda_version=<1000*major+10*minor>, vmm=0, posix_fd=0.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fake_ctl.h"
#include <fcntl.h>

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
  /* JetPack 6 ships CUDA 12.2, JetPack 5 CUDA 11.4, JetPack 4.6 CUDA 10.2; cuda_version overrides. */
  static const int jetson_cuda[] = {12020, 11040, 10020};
  *v = (int)fake_int("cuda_version", fake_int("jetson", 0) ? jetson_cuda[fake_jetson_gen()] : 12040);
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
    case 19: *value = 1; break;                      /* CAN_MAP_HOST_MEMORY */
    case 32: *value = g->integrated ? 0 : 1; break;  /* ECC_ENABLED */
    case 41: *value = 1; break;                      /* UNIFIED_ADDRESSING */
    case 83: *value = 1; break;                      /* MANAGED_MEMORY */
    case 88: *value = 0; break;                      /* PAGEABLE_MEMORY_ACCESS */
    case 89: *value = g->integrated ? 0 : 1; break;  /* CONCURRENT_MANAGED_ACCESS */
    case 100: *value = 0; break;                     /* PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES */
    /* VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED: yes on the
       server GPUs, no on the Jetsons; vmm=0 / posix_fd=0 script a server that lacks them. */
    case 102: *value = g->integrated ? 0 : (int)fake_int("vmm", 1); break;
    case 103: *value = g->integrated ? 0 : (int)fake_int("posix_fd", 1); break;
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
    case INVALID_VALUE: *out = "CUDA_ERROR_INVALID_VALUE"; return SUCCESS;
    case 2: *out = "CUDA_ERROR_OUT_OF_MEMORY"; return SUCCESS;
    case 201: *out = "CUDA_ERROR_INVALID_CONTEXT"; return SUCCESS;
    case 200: *out = "CUDA_ERROR_INVALID_IMAGE"; return SUCCESS;
    case 209: *out = "CUDA_ERROR_NO_BINARY_FOR_GPU"; return SUCCESS;
    case 218: *out = "CUDA_ERROR_INVALID_PTX"; return SUCCESS;
    case 222: *out = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"; return SUCCESS;
    case 700: *out = "CUDA_ERROR_ILLEGAL_ADDRESS"; return SUCCESS;
    case 801: *out = "CUDA_ERROR_NOT_SUPPORTED"; return SUCCESS;
    default: *out = NULL; return INVALID_VALUE;
  }
}
int cuGetErrorString(int code, const char **out) { return cuGetErrorName(code, out); }

/*
 * Execution, emulated on the host: device pointers are host memory, a module knows which of
 * the shipped kernels its PTX defines, and a launch runs that kernel's semantics in C. This
 * exercises the runner's real FFI path (params arrays of argument addresses, copies, frees).
 * Control keys: mem_limit_mib=<n> (allocations beyond it fail OUT_OF_MEMORY),
 * launch_error=<code>, launch_sleep_ms=<n>, module_load_error=<code> (cuModuleLoadData refuses
 * every module, as an old driver refuses a newer PTX ISA with 222 or an old GPU a newer
 * .target with 209).
 */
#include <stdint.h>
#include <time.h>
#include <unistd.h>

enum { OUT_OF_MEMORY = 2, INVALID_CONTEXT = 201, INVALID_PTX = 218, NOT_FOUND = 500, ILLEGAL_ADDRESS = 700 };
struct fake_module { int has_vadd, has_matmul, has_tree; };
struct fake_function { int kind; /* 1 vadd, 2 matmul, 3 vram_tree_leaves, 4 vram_tree_level */ };
static unsigned long long allocated = 0;
static int current_dev = -1; /* the device of the current context */

int cuDevicePrimaryCtxRetain(void **ctx, int d) {
  GPU(d);
  (void)g;
  *ctx = (void *)(uintptr_t)(0x1000 + d);
  return SUCCESS;
}
int cuDevicePrimaryCtxRelease_v2(int d) { GPU(d); (void)g; return SUCCESS; }
int cuCtxSetCurrent(void *ctx) {
  if (ctx == NULL) return INVALID_VALUE;
  current_dev = (int)((uintptr_t)ctx - 0x1000);
  return SUCCESS;
}
int cuCtxSynchronize(void) { return SUCCESS; }

/*
 * Allocations are tracked (base, size, device), as the driver does: frees and copies of
 * unknown or out-of-range pointers fail INVALID_VALUE, cuMemGetInfo_v2 answers from the
 * device's total less what is allocated on it, and cuPointerGetAttribute knows what it is asked.
 * Control keys: pointer_type=<CUmemorytype> and pointer_managed=1 make allocations report
 * another memory type or managed memory (a VRAM-only policy violation), from the next call on,
 * so an allocation sealed as device memory can be made to turn up as host memory later;
 * pointer_devices=<ordinals> limits both to allocations on those CUDA devices (default: all);
 * alloc_error=<code> and
 * free_error=<code> make allocations (cuMemAlloc_v2, cuMemCreate) or frees (cuMemFree_v2,
 * cuMemRelease) fail with that CUresult, as a driver in trouble does.
 */
/* access: what this process may do there (cuMemAlloc: read and write; a VMM mapping: what
   cuMemSetAccess granted, nothing before). vmm: a cuMemMap mapping, which cuMemFree refuses. */
struct fake_alloc { unsigned long long base, size; int dev, access, vmm; struct fake_alloc *next; };
static struct fake_alloc *allocs = NULL;
enum { ACCESS_READ = 1, ACCESS_READWRITE = 3 };

/*
 * An MPS client, as the real driver makes one: a process whose pipe folder
 * (CUDA_MPS_PIPE_DIRECTORY, default /tmp/nvidia-mps) holds a running control daemon's `control`
 * endpoint allocates through it, held to CUDA_MPS_PINNED_DEVICE_MEM_LIMIT on each device:
 * `<ordinal>=<size>` entries separated by commas, or one `<size>` for every device, the size in
 * bytes or with a K, M or G suffix. Without a daemon the variables do nothing, as on real drivers.
 * Returns the cap in bytes for `dev`, or 0 for none.
 */
static unsigned long long mps_cap(int dev) {
  const char *dir = getenv("CUDA_MPS_PIPE_DIRECTORY");
  char control[4096];
  snprintf(control, sizeof control, "%s/control", dir != NULL && dir[0] != '\0' ? dir : "/tmp/nvidia-mps");
  if (access(control, F_OK) != 0) return 0;
  const char *limit = getenv("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT");
  if (limit == NULL) return 0;
  char buf[512];
  snprintf(buf, sizeof buf, "%s", limit);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(t, '=');
    if (eq != NULL && atoi(t) != dev) continue;
    char *end;
    unsigned long long n = strtoull(eq != NULL ? eq + 1 : t, &end, 10);
    unsigned long long unit = *end == 'G' ? 1ULL << 30 : *end == 'M' ? 1ULL << 20 : *end == 'K' ? 1ULL << 10 : 1;
    return n * unit;
  }
  return 0;
}

static struct fake_alloc *alloc_of(unsigned long long p, unsigned long long bytes) {
  for (struct fake_alloc *a = allocs; a != NULL; a = a->next)
    if (p >= a->base && p < a->base + a->size && bytes <= a->base + a->size - p) return a;
  return NULL;
}
/* A range this process may read (or write): else the copy engine faults, as a GPU's MMU does on
   a page mapped without that access, and the call fails ILLEGAL_ADDRESS. */
static int reach(unsigned long long p, unsigned long long bytes, int need) {
  struct fake_alloc *a = alloc_of(p, bytes);
  if (a == NULL) return INVALID_VALUE;
  return (a->access & need) == need ? SUCCESS : ILLEGAL_ADDRESS;
}

int cuMemAlloc_v2(unsigned long long *dptr, unsigned long long bytes) {
  if (current_dev < 0) return INVALID_CONTEXT;
  if (fake_int("alloc_error", 0)) return (int)fake_int("alloc_error", 0);
  if (bytes == 0) return INVALID_VALUE;
  long limit = fake_int("mem_limit_mib", 1 << 20);
  if (allocated + bytes > (unsigned long long)limit << 20) return OUT_OF_MEMORY;
  unsigned long long cap = mps_cap(current_dev);
  if (cap != 0) {
    unsigned long long on_dev = 0;
    for (struct fake_alloc *a = allocs; a != NULL; a = a->next)
      if (a->dev == current_dev) on_dev += a->size;
    if (on_dev + bytes > cap) return OUT_OF_MEMORY;
  }
  void *p = calloc(1, bytes);
  if (p == NULL) return OUT_OF_MEMORY;
  struct fake_alloc *a = malloc(sizeof *a);
  a->base = (unsigned long long)(uintptr_t)p;
  a->size = bytes;
  a->dev = current_dev;
  a->access = ACCESS_READWRITE;
  a->vmm = 0;
  a->next = allocs;
  allocs = a;
  allocated += bytes;
  *dptr = a->base;
  return SUCCESS;
}
int cuMemFree_v2(unsigned long long dptr) {
  if (fake_int("free_error", 0)) return (int)fake_int("free_error", 0);
  for (struct fake_alloc **pp = &allocs; *pp != NULL; pp = &(*pp)->next) {
    struct fake_alloc *a = *pp;
    if (a->base != dptr || a->vmm) continue;
    *pp = a->next;
    allocated -= a->size;
    free((void *)(uintptr_t)a->base);
    free(a);
    return SUCCESS;
  }
  return INVALID_VALUE;
}
int cuMemcpyHtoD_v2(unsigned long long dst, const void *src, unsigned long long bytes) {
  int rc = reach(dst, bytes, ACCESS_READWRITE);
  if (rc != SUCCESS) return rc;
  memcpy((void *)(uintptr_t)dst, src, bytes);
  return SUCCESS;
}
int cuMemcpyDtoH_v2(void *dst, unsigned long long src, unsigned long long bytes) {
  int rc = reach(src, bytes, ACCESS_READ);
  if (rc != SUCCESS) return rc;
  memcpy(dst, (const void *)(uintptr_t)src, bytes);
  return SUCCESS;
}
int cuMemsetD8_v2(unsigned long long dst, unsigned char value, unsigned long long count) {
  int rc = reach(dst, count, ACCESS_READWRITE);
  if (rc != SUCCESS) return rc;
  memset((void *)(uintptr_t)dst, value, count);
  return SUCCESS;
}
static unsigned long long vmm_used(int dev);
int cuMemGetInfo_v2(unsigned long long *free_bytes, unsigned long long *total_bytes) {
  if (current_dev < 0) return INVALID_CONTEXT;
  const struct fake_gpu *g = by_ordinal(current_dev);
  unsigned long long total = g->integrated ? 3ull << 30 : g->total_mib << 20;
  unsigned long long limit = (unsigned long long)fake_int("mem_limit_mib", 1 << 20) << 20;
  if (limit < total) total = limit;
  unsigned long long used = vmm_used(current_dev);
  for (struct fake_alloc *a = allocs; a != NULL; a = a->next)
    if (a->dev == current_dev && !a->vmm) used += a->size;
  *total_bytes = total;
  *free_bytes = used > total ? 0 : total - used;
  return SUCCESS;
}
enum { PTR_MEMORY_TYPE = 2, PTR_HOST_POINTER = 4, PTR_IS_MANAGED = 8, PTR_DEVICE_ORDINAL = 9 };
/* Whether the pointer_* keys apply to an allocation on `dev`. */
static int pointer_scripted(int dev) {
  char buf[8];
  return !fake_ctl_lookup("pointer_devices", buf, sizeof buf) || fake_listed("pointer_devices", dev);
}
int cuPointerGetAttribute(void *data, int attribute, unsigned long long ptr) {
  struct fake_alloc *a = alloc_of(ptr, 0);
  if (a == NULL) return INVALID_VALUE;
  int scripted = pointer_scripted(a->dev);
  unsigned int type = scripted ? (unsigned int)fake_int("pointer_type", 2) : 2;
  int managed = scripted && fake_int("pointer_managed", 0);
  switch (attribute) {
    case PTR_MEMORY_TYPE: *(unsigned int *)data = type; return SUCCESS;
    case PTR_IS_MANAGED: *(unsigned char *)data = managed ? 1 : 0; return SUCCESS;
    case PTR_DEVICE_ORDINAL: *(int *)data = a->dev; return SUCCESS;
    case PTR_HOST_POINTER:
      /* device memory has no host pointer; memory the fake calls host or managed does */
      if (type == 2 && !managed) return INVALID_VALUE;
      *(void **)data = (void *)(uintptr_t)ptr;
      return SUCCESS;
    default: return INVALID_VALUE;
  }
}

int cuModuleLoadData(struct fake_module **mod, const char *image) {
  long refuse = fake_int("module_load_error", 0);
  if (refuse) return (int)refuse;
  if (strstr(image, ".version") == NULL || strstr(image, ".entry") == NULL) return INVALID_PTX;
  struct fake_module *m = calloc(1, sizeof *m);
  m->has_vadd = strstr(image, ".entry vadd(") != NULL;
  m->has_matmul = strstr(image, ".entry matmul(") != NULL;
  m->has_tree = strstr(image, ".entry vram_tree_leaves(") != NULL && strstr(image, ".entry vram_tree_level(") != NULL;
  *mod = m;
  return SUCCESS;
}
int cuModuleUnload(struct fake_module *m) {
  free(m);
  return SUCCESS;
}
int cuModuleGetFunction(struct fake_function **fn, struct fake_module *m, const char *name) {
  int kind = (strcmp(name, "vadd") == 0 && m->has_vadd) ? 1 : (strcmp(name, "matmul") == 0 && m->has_matmul) ? 2
           : (strcmp(name, "vram_tree_leaves") == 0 && m->has_tree) ? 3 : (strcmp(name, "vram_tree_level") == 0 && m->has_tree) ? 4 : 0;
  if (!kind) return NOT_FOUND;
  struct fake_function *f = malloc(sizeof *f);
  f->kind = kind;
  *fn = f;
  return SUCCESS;
}

/*
 * The tree kernels, run as the GPU would: every thread of the launch executes the kernel's
 * grid-stride loop over the functions of sha256_tree.h (the same source the PTX is built from).
 * A pointer outside an allocation ends the launch with ILLEGAL_ADDRESS, as on a GPU.
 */
#include "../../src/vram/ptx/sha256_tree.h"
static int launch_tree(int kind, unsigned long long threads, void **params) {
  if (threads == 0) return INVALID_VALUE;
  if (kind == 3) {
    unsigned long long data = *(unsigned long long *)params[0], len = *(unsigned long long *)params[1];
    unsigned long long out = *(unsigned long long *)params[2];
    unsigned int leaves = *(unsigned int *)params[3];
    if (reach(data, len, ACCESS_READ) != SUCCESS || reach(out, 32ull * leaves, ACCESS_READWRITE) != SUCCESS) return ILLEGAL_ADDRESS;
    if ((unsigned long long)leaves * TREE_LEAF_BYTES < len || (leaves - 1ull) * TREE_LEAF_BYTES >= len) return ILLEGAL_ADDRESS;
    for (unsigned long long t = 0; t < threads; t++)
      for (unsigned long long i = t; i < leaves; i += threads)
        tree_leaf((const uint8_t *)(uintptr_t)data, len, (uint8_t *)(uintptr_t)out, i);
  } else {
    unsigned long long in = *(unsigned long long *)params[0], out = *(unsigned long long *)params[1];
    unsigned int n = *(unsigned int *)params[2];
    unsigned long long parents = (n + 1ull) / 2;
    if (alloc_of(in, 32ull * n) == NULL || alloc_of(out, 32ull * parents) == NULL) return ILLEGAL_ADDRESS;
    for (unsigned long long t = 0; t < threads; t++)
      for (unsigned long long i = t; i < parents; i += threads)
        tree_node((const uint8_t *)(uintptr_t)in, (uint8_t *)(uintptr_t)out, n, i);
  }
  return SUCCESS;
}

int cuLaunchKernel(struct fake_function *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned shared, void *stream, void **params, void **extra) {
  (void)shared; (void)stream; (void)extra;
  long err = fake_int("launch_error", 0);
  if (err) return (int)err;
  long sleep_ms = fake_int("launch_sleep_ms", 0);
  if (sleep_ms > 0) {
    struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (f->kind == 3 || f->kind == 4) return launch_tree(f->kind, (unsigned long long)gx * gy * gz * bx * by * bz, params);
  const float *a = (const float *)(uintptr_t)*(unsigned long long *)params[0];
  const float *b = (const float *)(uintptr_t)*(unsigned long long *)params[1];
  float *c = (float *)(uintptr_t)*(unsigned long long *)params[2];
  unsigned int n = *(unsigned int *)params[3];
  /* The kernels read a and b and write c: a c mapped read-only faults, as on a GPU. */
  unsigned long long elems = f->kind == 1 ? n : (unsigned long long)n * n;
  if (reach((uintptr_t)c, 4 * elems, ACCESS_READWRITE) == ILLEGAL_ADDRESS) return ILLEGAL_ADDRESS;
  /* The shipped kernels loop grid-stride (src/job/ptx/kernels.cu): any grid and block, even
     1x1, cover every element, so the result does not depend on them. */
  (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz;
  if (f->kind == 1) {
    for (unsigned long long i = 0; i < n; i++) c[i] = a[i] + b[i];
  } else {
    for (unsigned long long col = 0; col < n; col++)
      for (unsigned int row = 0; row < n; row++) {
        float acc = 0.0f;
        for (unsigned int k = 0; k < n; k++) acc += a[row * n + k] * b[k * n + col];
        c[row * n + col] = acc;
      }
  }
  return SUCCESS;
}

/*
 * Virtual memory management and POSIX file-descriptor handles (cuda.h 13.0 values), as a
 * process sees them: cuMemCreate makes physical memory that really is shared memory (a memfd),
 * cuMemExportToShareableHandle hands out a new descriptor for it, and another process's
 * cuMemImportFromShareableHandle + cuMemAddressReserve + cuMemMap + cuMemSetAccess maps it with
 * the access asked for: PROT_READ (0x1) maps the pages read-only in this process, so a copy
 * into them fails ILLEGAL_ADDRESS and a store through the pointer faults (SIGSEGV), while the
 * exporter's writes stay visible. Granularity is 2 MiB, as on current GPUs; sizes must be
 * multiples of it. Devices without VMM (vmm=0, Jetsons) answer NOT_SUPPORTED; an allocation made
 * without the POSIX-fd handle type (or posix_fd=0) cannot be exported.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NOT_SUPPORTED = 801, HANDLE_POSIX_FD = 1, LOCATION_DEVICE = 1, GRANULARITY = 2 << 20 };
struct fake_location { int type, id; };
struct fake_prop { int type, handle_types; struct fake_location location; void *win32; unsigned char flags[8]; };
struct fake_access { struct fake_location location; int flags; };
struct fake_handle { int fd, dev, handle_types, imported; unsigned long long size; struct fake_handle *next; };
static struct fake_handle *handles = NULL;

static unsigned long long vmm_used(int dev) {
  unsigned long long used = 0;
  for (struct fake_handle *h = handles; h != NULL; h = h->next)
    if (h->dev == dev && !h->imported) used += h->size;
  return used;
}
static int vmm_supported(int dev) {
  const struct fake_gpu *g = by_ordinal(dev);
  return g != NULL && !g->integrated && fake_int("vmm", 1);
}
static struct fake_handle *handle_of(unsigned long long h) {
  for (struct fake_handle *x = handles; x != NULL; x = x->next)
    if ((unsigned long long)(uintptr_t)x == h) return x;
  return NULL;
}

int cuMemGetAllocationGranularity(size_t *granularity, const struct fake_prop *prop, int option) {
  if (prop == NULL || prop->location.type != LOCATION_DEVICE || option < 0 || option > 1) return INVALID_VALUE;
  if (!vmm_supported(prop->location.id)) return NOT_SUPPORTED;
  *granularity = GRANULARITY;
  return SUCCESS;
}
int cuMemCreate(unsigned long long *handle, size_t size, const struct fake_prop *prop, unsigned long long flags) {
  if (prop == NULL || flags != 0 || prop->type != 1 || prop->location.type != LOCATION_DEVICE) return INVALID_VALUE;
  if (!vmm_supported(prop->location.id)) return NOT_SUPPORTED;
  if (size == 0 || size % GRANULARITY != 0) return INVALID_VALUE;
  if (fake_int("alloc_error", 0)) return (int)fake_int("alloc_error", 0);
  if ((prop->handle_types & HANDLE_POSIX_FD) && !fake_int("posix_fd", 1)) return NOT_SUPPORTED;
  const struct fake_gpu *g = by_ordinal(prop->location.id);
  unsigned long long total = g->total_mib << 20, limit = (unsigned long long)fake_int("mem_limit_mib", 1 << 20) << 20;
  if (allocated + vmm_used(prop->location.id) + size > (limit < total ? limit : total)) return OUT_OF_MEMORY;
  int fd = memfd_create("fake-cuda-vmm", MFD_CLOEXEC);
  if (fd < 0) return OUT_OF_MEMORY;
  if (ftruncate(fd, (off_t)size) != 0) { close(fd); return OUT_OF_MEMORY; }
  struct fake_handle *h = calloc(1, sizeof *h);
  *h = (struct fake_handle){fd, prop->location.id, prop->handle_types, 0, size, handles};
  handles = h;
  *handle = (unsigned long long)(uintptr_t)h;
  return SUCCESS;
}
int cuMemRelease(unsigned long long handle) {
  if (fake_int("free_error", 0)) return (int)fake_int("free_error", 0);
  for (struct fake_handle **pp = &handles; *pp != NULL; pp = &(*pp)->next) {
    if ((unsigned long long)(uintptr_t)*pp != handle) continue;
    struct fake_handle *h = *pp;
    *pp = h->next;
    close(h->fd); /* pages stay alive while a mapping (here or in an importer) holds them */
    free(h);
    return SUCCESS;
  }
  return INVALID_VALUE;
}
int cuMemExportToShareableHandle(void *out, unsigned long long handle, int type, unsigned long long flags) {
  struct fake_handle *h = handle_of(handle);
  if (h == NULL || out == NULL || flags != 0) return INVALID_VALUE;
  if (type != HANDLE_POSIX_FD || !(h->handle_types & HANDLE_POSIX_FD)) return NOT_SUPPORTED;
  int fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return INVALID_VALUE;
  *(int *)out = fd;
  return SUCCESS;
}
int cuMemImportFromShareableHandle(unsigned long long *handle, void *os_handle, int type) {
  if (!inited) return NOT_INITIALIZED;
  if (type != HANDLE_POSIX_FD) return NOT_SUPPORTED;
  struct stat st;
  int fd = (int)(intptr_t)os_handle;
  if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size % GRANULARITY != 0) return INVALID_VALUE;
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* the caller keeps (and closes) its descriptor */
  if (own < 0) return INVALID_VALUE;
  struct fake_handle *h = calloc(1, sizeof *h);
  *h = (struct fake_handle){own, current_dev < 0 ? 0 : current_dev, HANDLE_POSIX_FD, 1, (unsigned long long)st.st_size, handles};
  handles = h;
  *handle = (unsigned long long)(uintptr_t)h;
  return SUCCESS;
}
int cuMemAddressReserve(unsigned long long *ptr, size_t size, size_t alignment, unsigned long long addr, unsigned long long flags) {
  (void)alignment;
  if (size == 0 || size % GRANULARITY != 0 || addr != 0 || flags != 0) return INVALID_VALUE;
  void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return OUT_OF_MEMORY;
  *ptr = (unsigned long long)(uintptr_t)p;
  return SUCCESS;
}
int cuMemAddressFree(unsigned long long ptr, size_t size) {
  if (alloc_of(ptr, 0) != NULL) return INVALID_VALUE; /* still mapped */
  return munmap((void *)(uintptr_t)ptr, size) == 0 ? SUCCESS : INVALID_VALUE;
}
int cuMemMap(unsigned long long ptr, size_t size, size_t offset, unsigned long long handle, unsigned long long flags) {
  struct fake_handle *h = handle_of(handle);
  if (h == NULL || flags != 0 || offset != 0 || size != h->size || alloc_of(ptr, 0) != NULL) return INVALID_VALUE;
  /* no access until cuMemSetAccess grants it, as on a GPU */
  if (mmap((void *)(uintptr_t)ptr, size, PROT_NONE, MAP_SHARED | MAP_FIXED, h->fd, 0) == MAP_FAILED) return INVALID_VALUE;
  struct fake_alloc *a = malloc(sizeof *a);
  *a = (struct fake_alloc){ptr, size, h->dev, 0, 1, allocs};
  allocs = a;
  return SUCCESS;
}
int cuMemSetAccess(unsigned long long ptr, size_t size, const struct fake_access *desc, size_t count) {
  struct fake_alloc *a = alloc_of(ptr, size);
  if (a == NULL || !a->vmm || a->base != ptr || count != 1 || desc == NULL || desc->location.type != LOCATION_DEVICE) return INVALID_VALUE;
  if (desc->flags != ACCESS_READ && desc->flags != ACCESS_READWRITE && desc->flags != 0) return INVALID_VALUE;
  int prot = desc->flags == ACCESS_READWRITE ? PROT_READ | PROT_WRITE : desc->flags == ACCESS_READ ? PROT_READ : PROT_NONE;
  if (mprotect((void *)(uintptr_t)ptr, size, prot) != 0) return INVALID_VALUE;
  a->access = desc->flags;
  return SUCCESS;
}
int cuMemUnmap(unsigned long long ptr, size_t size) {
  for (struct fake_alloc **pp = &allocs; *pp != NULL; pp = &(*pp)->next) {
    struct fake_alloc *a = *pp;
    if (a->base != ptr || !a->vmm || a->size != size) continue;
    *pp = a->next;
    /* back to a bare reservation, as cuMemAddressFree expects */
    mmap((void *)(uintptr_t)ptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    free(a);
    return SUCCESS;
  }
  return INVALID_VALUE;
}
