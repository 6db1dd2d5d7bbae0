/*
 * Shared by the fake libnvidia-ml.so.1 and libcuda.so.1: a control file, named by the
 * environment variable FAKE_GPU_CTL and re-read on every call, lets a test change what the
 * "hardware" answers while the bridge runs (a GPU vanishing, a GPU lost, a driver missing).
 * Lines are "key=value"; an absent file or key gives the default.
 */
#ifndef FAKE_CTL_H
#define FAKE_CTL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int fake_ctl_lookup(const char *key, char *out, size_t cap) {
  const char *path = getenv("FAKE_GPU_CTL");
  if (path == NULL) return 0;
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[512];
  size_t klen = strlen(key);
  int found = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
      char *v = line + klen + 1;
      size_t n = strcspn(v, "\r\n");
      if (n >= cap) n = cap - 1; /* long values are cut: keys hold short numbers and lists */
      memcpy(out, v, n);
      out[n] = '\0';
      found = 1;
    }
  }
  fclose(f);
  return found;
}

static inline long fake_int(const char *key, long dflt) {
  char buf[64];
  return fake_ctl_lookup(key, buf, sizeof buf) ? strtol(buf, NULL, 10) : dflt;
}

/* 1 if `key` holds a comma-separated list containing `idx`. */
static inline int fake_listed(const char *key, int idx) {
  char buf[256];
  if (!fake_ctl_lookup(key, buf, sizeof buf)) return 0;
  for (char *t = strtok(buf, ","); t != NULL; t = strtok(NULL, ","))
    if (atoi(t) == idx) return 1;
  return 0;
}

static inline void fake_copy(char *dst, unsigned int len, const char *src) {
  if (len == 0) return;
  snprintf(dst, len, "%s", src);
}

/*
 * The fake machine. Physical GPUs in PCI order (NVML's order); CUDA lists them fastest first,
 * so its ordinals differ: CUDA ordinal 0 is physical GPU 1.
 */
struct fake_gpu {
  const char *name;
  const char *uuid_hex; /* 32 hex digits */
  unsigned int domain, bus, device;
  unsigned long long total_mib;
  int sm_count, cc_major, cc_minor, integrated;
};

static const struct fake_gpu FAKE_SERVER[] = {
  {"NVIDIA A100-SXM4-40GB", "1111111122223333444455556666aaaa", 0, 0x17, 0, 40960, 108, 8, 0, 0},
  {"NVIDIA H100 80GB HBM3", "9999999988887777666655554444bbbb", 0, 0x65, 0, 81559, 132, 9, 0, 0},
};
/* jetson=1 (or any other non-zero value): Orin; jetson=2: AGX Xavier; jetson=3: Nano. */
static const struct fake_gpu FAKE_JETSON[] = {
  {"Orin", "0123456789abcdef0123456789abcdef", 0, 0, 0, 0, 16, 8, 7, 1},
  {"Xavier", "2222222233334444555566667777cccc", 0, 0, 0, 0, 8, 7, 2, 1},
  {"NVIDIA Tegra X1", "3333333344445555666677778888dddd", 0, 0, 0, 0, 1, 5, 3, 1},
};

/* Which Jetson generation (0: Orin, 1: Xavier, 2: Nano) when jetson is set. */
static inline int fake_jetson_gen(void) {
  long j = fake_int("jetson", 0);
  return j == 2 ? 1 : j == 3 ? 2 : 0;
}

static inline const struct fake_gpu *fake_gpus(int *count) {
  int jetson = fake_int("jetson", 0) != 0;
  int n = jetson ? 1 : 2;
  int limit = (int)fake_int("count", n);
  *count = limit < n ? limit : n;
  return jetson ? &FAKE_JETSON[fake_jetson_gen()] : FAKE_SERVER;
}

/* CUDA ordinal -> physical index: reversed on the server, identity on Jetson. */
static inline int fake_cuda_to_physical(int ordinal, int count) {
  return fake_int("jetson", 0) ? ordinal : count - 1 - ordinal;
}

static inline void fake_uuid_text(const struct fake_gpu *g, char *out, size_t cap) {
  const char *h = g->uuid_hex;
  snprintf(out, cap, "GPU-%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}
#endif
