/*
 * A fake libnvidia-ml.so.1 for tests: the real symbol names and struct layouts (those of
 * ffi/nvml.ts, as NVML's nvml.h declares them) over the scripted machine in fake_ctl.h.
 * Control keys: init_error=<code>, count=<n>, lost=<i,..>, notsup=1 (live stats unsupported),
 * jetson=1 (NVML present but answering NOT_SUPPORTED, as on JetPack 6), minors=<m0,m1,..>
 * (device minor numbers, default the index), mig_devices=<n> (MIG devices on a GPU in MIG mode,
 * default 2; GPU 1, the H100, is in MIG mode), events=<gpu>:<type>:<data>,... (NVML events in the
 * order they happen: append one to make it happen; an event set sees only those appended after
 * it was created, on the GPUs and types registered with it, each once).
 */
#include <stdint.h>
#include "fake_ctl.h"

enum { OK = 0, UNINIT = 1, INVALID = 2, NOT_SUPPORTED = 3, NOT_FOUND = 6, INSUFFICIENT = 7, TIMEOUT = 10, GPU_LOST = 15 };
static int inits = 0;

/* mig: 0 for a whole GPU, k + 1 for the GPU's MIG device k. */
struct handle { int index; int mig; };
static struct handle HANDLES[8] = {{0, 0}, {1, 0}, {2, 0}, {3, 0}, {4, 0}, {5, 0}, {6, 0}, {7, 0}};
enum { MAX_MIG = 7 };
static struct handle MIG_HANDLES[8][MAX_MIG];

int nvmlInit_v2(void) {
  long e = fake_int("init_error", 0);
  if (e) return (int)e;
  inits++;
  return OK;
}
int nvmlShutdown(void) {
  if (inits == 0) return UNINIT;
  inits--;
  return OK;
}
const char *nvmlErrorString(int code) {
  switch (code) {
    case OK: return "Success";
    case UNINIT: return "Uninitialized";
    case INVALID: return "Invalid Argument";
    case NOT_SUPPORTED: return "Not Supported";
    case GPU_LOST: return "GPU is lost";
    case 9: return "Driver Not Loaded";
    default: return "Unknown Error";
  }
}

static int count_now(void) {
  int n;
  fake_gpus(&n);
  return n;
}

int nvmlDeviceGetCount_v2(unsigned int *count) {
  if (!inits) return UNINIT;
  *count = (unsigned int)count_now();
  return OK;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, struct handle **out) {
  if (!inits) return UNINIT;
  if ((int)index >= count_now()) return INVALID;
  if (fake_listed("lost", (int)index)) return GPU_LOST;
  *out = &HANDLES[index];
  return OK;
}

/* The device behind a handle, or an error code: a vanished GPU is NOT_FOUND, a lost one GPU_LOST. */
static int dev(struct handle *h, const struct fake_gpu **g) {
  int n;
  const struct fake_gpu *all = fake_gpus(&n);
  if (h == NULL) return INVALID;
  if (h->index >= n) return NOT_FOUND;
  if (fake_listed("lost", h->index)) return GPU_LOST;
  *g = &all[h->index];
  return OK;
}

#define DEV(h) const struct fake_gpu *g; { int rc_ = dev(h, &g); if (rc_) return rc_; }
#define LIVE() if (fake_int("notsup", 0) || fake_int("jetson", 0)) return NOT_SUPPORTED

int nvmlDeviceGetName(struct handle *h, char *buf, unsigned int len) {
  DEV(h);
  fake_copy(buf, len, g->name);
  return OK;
}
int nvmlDeviceGetUUID(struct handle *h, char *buf, unsigned int len) {
  DEV(h);
  char text[64];
  fake_uuid_text(g, text, sizeof text);
  if (h->mig) { /* MIG-<uuid>: the parent's digits with the last one naming the instance */
    memcpy(text, "MIG", 3);
    text[strlen(text) - 1] = (char)('0' + h->mig);
  }
  if (len < strlen(text) + 1) return INSUFFICIENT;
  fake_copy(buf, len, text);
  return OK;
}
int nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
  fake_copy(buf, len, "550.54.15");
  return OK;
}
int nvmlSystemGetCudaDriverVersion_v2(int *v) {
  *v = 12040;
  return OK;
}
int nvmlSystemGetCudaDriverVersion(int *v) {
  *v = 12040;
  return OK;
}

int nvmlDeviceGetPciInfo_v3(struct handle *h, unsigned char *pci) {
  DEV(h);
  memset(pci, 0, 68);
  snprintf((char *)pci, 16, "%04X:%02X:%02X.0", g->domain, g->bus, g->device);
  memcpy(pci + 16, &g->domain, 4);
  memcpy(pci + 20, &g->bus, 4);
  memcpy(pci + 24, &g->device, 4);
  unsigned int id = 0x20B010DE;
  memcpy(pci + 28, &id, 4);
  snprintf((char *)pci + 36, 32, "%08X:%02X:%02X.0", g->domain, g->bus, g->device);
  return OK;
}

static unsigned long long used_bytes(int index) { return (unsigned long long)(1024 + 512 * index) << 20; }

int nvmlDeviceGetMemoryInfo(struct handle *h, unsigned long long *m) {
  DEV(h);
  if (fake_int("jetson", 0)) return NOT_SUPPORTED;
  m[0] = g->total_mib << 20;
  m[2] = used_bytes(h->index);
  m[1] = m[0] - m[2];
  return OK;
}
int nvmlDeviceGetMemoryInfo_v2(struct handle *h, unsigned char *s) {
  DEV(h);
  if (fake_int("jetson", 0)) return NOT_SUPPORTED;
  unsigned int version;
  memcpy(&version, s, 4);
  if (version != 0x02000028) return 25; /* ARGUMENT_VERSION_MISMATCH */
  unsigned long long total = g->total_mib << 20, reserved = 256ull << 20, used = used_bytes(h->index);
  unsigned long long free_ = total - reserved - used;
  memcpy(s + 8, &total, 8);
  memcpy(s + 16, &reserved, 8);
  memcpy(s + 24, &free_, 8);
  memcpy(s + 32, &used, 8);
  return OK;
}
int nvmlDeviceGetUtilizationRates(struct handle *h, unsigned int *u) {
  DEV(h); LIVE();
  u[0] = 37 + 10 * (unsigned)h->index;
  u[1] = 12 + (unsigned)h->index;
  return OK;
}
int nvmlDeviceGetTemperature(struct handle *h, int sensor, unsigned int *t) {
  DEV(h); LIVE();
  if (sensor != 0) return INVALID;
  *t = 41 + (unsigned)h->index;
  return OK;
}
int nvmlDeviceGetPowerUsage(struct handle *h, unsigned int *mw) {
  DEV(h); LIVE();
  *mw = 85250 + 1000 * (unsigned)h->index;
  return OK;
}
int nvmlDeviceGetEnforcedPowerLimit(struct handle *h, unsigned int *mw) {
  DEV(h); LIVE();
  *mw = 400000;
  return OK;
}
int nvmlDeviceGetTotalEnergyConsumption(struct handle *h, unsigned long long *mj) {
  DEV(h); LIVE();
  *mj = 123456789ull + (unsigned)h->index;
  return OK;
}
int nvmlDeviceGetClockInfo(struct handle *h, int type, unsigned int *mhz) {
  DEV(h); LIVE();
  static const unsigned int clocks[] = {1410, 1410, 1215};
  if (type < 0 || type > 2) return INVALID;
  *mhz = clocks[type];
  return OK;
}
int nvmlDeviceGetCudaComputeCapability(struct handle *h, int *major, int *minor) {
  DEV(h);
  *major = g->cc_major;
  *minor = g->cc_minor;
  return OK;
}
int nvmlDeviceGetMigMode(struct handle *h, unsigned int *current, unsigned int *pending) {
  DEV(h); LIVE();
  if (g->cc_major < 8) return NOT_SUPPORTED;
  *current = h->index == 1 ? 1 : 0;
  *pending = *current;
  return OK;
}
int nvmlDeviceGetComputeRunningProcesses_v3(struct handle *h, unsigned int *count, unsigned char *entries) {
  DEV(h); LIVE();
  unsigned int n = h->index == 0 ? 2 : 0;
  if (*count < n) {
    *count = n;
    return n == 0 ? OK : INSUFFICIENT;
  }
  for (unsigned int i = 0; i < n; i++) {
    unsigned char *e = entries + 24 * i;
    memset(e, 0, 24);
    unsigned int pid = 4242 + i;
    unsigned long long mem = (unsigned long long)(256 * (i + 1)) << 20;
    memcpy(e, &pid, 4);
    memcpy(e + 8, &mem, 8);
  }
  *count = n;
  return OK;
}

/* The k-th entry of a comma-separated list under `key`, or dflt. */
static long list_at(const char *key, int k, long dflt) {
  char buf[256];
  if (!fake_ctl_lookup(key, buf, sizeof buf)) return dflt;
  int i = 0;
  for (char *t = strtok(buf, ","); t != NULL; t = strtok(NULL, ","), i++)
    if (i == k) return strtol(t, NULL, 10);
  return dflt;
}

static int mig_enabled(struct handle *h, const struct fake_gpu *g) {
  return !fake_int("jetson", 0) && g->cc_major >= 8 && h->index == 1;
}

int nvmlDeviceGetMinorNumber(struct handle *h, unsigned int *minor) {
  DEV(h);
  if (h->mig) return INVALID;
  *minor = (unsigned int)list_at("minors", h->index, h->index);
  return OK;
}
int nvmlDeviceGetMaxMigDeviceCount(struct handle *h, unsigned int *count) {
  DEV(h);
  if (g->cc_major < 8 || fake_int("jetson", 0)) return NOT_SUPPORTED;
  *count = MAX_MIG;
  return OK;
}
int nvmlDeviceGetMigDeviceHandleByIndex(struct handle *h, unsigned int index, struct handle **out) {
  DEV(h);
  if (h->mig || !mig_enabled(h, g)) return INVALID;
  if (index >= MAX_MIG) return INVALID;
  if ((long)index >= fake_int("mig_devices", 2)) return NOT_FOUND;
  struct handle *m = &MIG_HANDLES[h->index][index];
  m->index = h->index;
  m->mig = (int)index + 1;
  *out = m;
  return OK;
}
/* GPU instance ids 1, 3, 5, ... (as a 3g + 3g split leaves them), compute instance 0. */
int nvmlDeviceGetGpuInstanceId(struct handle *h, unsigned int *id) {
  DEV(h);
  if (!h->mig) return NOT_SUPPORTED;
  *id = (unsigned int)(1 + 2 * (h->mig - 1));
  return OK;
}
int nvmlDeviceGetComputeInstanceId(struct handle *h, unsigned int *id) {
  DEV(h);
  if (!h->mig) return NOT_SUPPORTED;
  *id = 0;
  return OK;
}

/* --- Events (nvmlEventSetCreate, nvmlDeviceRegisterEvents, nvmlEventSetWait_v2) ------------- */
/* nvml.h's event types: single- and double-bit ECC, P-state, critical XID, clock. */
enum { EV_SBE = 0x1, EV_DBE = 0x2, EV_PSTATE = 0x4, EV_XID = 0x8, EV_CLOCK = 0x10 };
static const unsigned long long SUPPORTED_EVENTS = EV_SBE | EV_DBE | EV_PSTATE | EV_XID | EV_CLOCK;
struct event_set { int seen; unsigned long long mask[8]; };
/* nvmlEventData_t: device, eventType, eventData, gpuInstanceId, computeInstanceId. */
struct event_data { struct handle *device; unsigned long long type, data; unsigned int gi, ci; };

/* The scripted events as (gpu, type, data); returns how many there are. */
static int scripted_events(int (*out)[3], int cap) {
  char buf[512];
  if (!fake_ctl_lookup("events", buf, sizeof buf)) return 0;
  int n = 0;
  for (char *t = strtok(buf, ","); t != NULL && n < cap; t = strtok(NULL, ",")) {
    int gpu, type, data;
    if (sscanf(t, "%d:%d:%d", &gpu, &type, &data) == 3) {
      out[n][0] = gpu; out[n][1] = type; out[n][2] = data; n++;
    }
  }
  return n;
}

int nvmlDeviceGetSupportedEventTypes(struct handle *h, unsigned long long *types) {
  DEV(h);
  (void)g;
  if (fake_int("jetson", 0) || h->mig) return NOT_SUPPORTED;
  *types = SUPPORTED_EVENTS;
  return OK;
}

int nvmlEventSetCreate(struct event_set **out) {
  if (!inits) return UNINIT;
  if (out == NULL) return INVALID;
  struct event_set *set = calloc(1, sizeof *set);
  int ev[64][3];
  set->seen = scripted_events(ev, 64);
  *out = set;
  return OK;
}

int nvmlDeviceRegisterEvents(struct handle *h, unsigned long long types, struct event_set *set) {
  DEV(h);
  (void)g;
  if (set == NULL || h->index >= 8) return INVALID;
  if (fake_int("jetson", 0) || h->mig || (types & ~SUPPORTED_EVENTS)) return NOT_SUPPORTED;
  set->mask[h->index] |= types;
  return OK;
}

/* Never blocks: the fake has nothing to wait for, so a timeout is answered at once. */
int nvmlEventSetWait_v2(struct event_set *set, struct event_data *data, unsigned int timeoutms) {
  (void)timeoutms;
  if (!inits) return UNINIT;
  if (set == NULL || data == NULL) return INVALID;
  int ev[64][3];
  int n = scripted_events(ev, 64);
  while (set->seen < n) {
    int *e = ev[set->seen++];
    if (e[0] < 0 || e[0] >= 8 || !(set->mask[e[0]] & (unsigned long long)e[1])) continue;
    data->device = &HANDLES[e[0]];
    data->type = (unsigned long long)e[1];
    data->data = (unsigned long long)e[2];
    data->gi = data->ci = 0xFFFFFFFFu;
    return OK;
  }
  return TIMEOUT;
}

int nvmlEventSetFree(struct event_set *set) {
  if (set == NULL) return INVALID;
  free(set);
  return OK;
}
