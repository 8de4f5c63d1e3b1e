/*
 * A mock of NVIDIA's NVML (libnvidia-ml.so): the functions gsp calls through
 * nvml-wrapper, answering from a text file named by $GSP_MOCK_NVML, read
 * anew on every call, so a test can change the devices while a node runs
 * (NVIDIA tests its Kubernetes device plugin against a mock library the same
 * way). Built by the tests (`cc -shared -fPIC`), or by
 * `scripts/build-mock-nvml.sh`, and loaded with `gsp node --nvml-library`.
 *
 * The file, one entry a line (# starts a comment):
 *   driver 550.54.15                  the driver version
 *   cuda 12040                        the CUDA driver version (12.4)
 *   init-fails                        nvmlInit_v2 answers DRIVER_NOT_LOADED
 *   gpu INDEX UUID TOTAL USED UTIL NAME...
 *                                     a GPU: memory in bytes, utilization in %
 *   mig INDEX UUID TOTAL USED NAME... a MIG instance of GPU INDEX (its MIG mode
 *                                     is then enabled)
 *   proc INDEX PID USED [MIG-UUID]    a process using GPU INDEX (USED bytes); on
 *                                     that MIG instance of it, when named
 *   lost INDEX                        GPU INDEX fell off the bus: its calls
 *                                     answer GPU_IS_LOST
 *   fail FUNCTION                     FUNCTION answers UNKNOWN (an injected error)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 64
#define MAX_MIGS 256
#define MAX_PROCS 1024
#define TEXT 96

typedef struct {
    int present;
    unsigned index;
    char uuid[TEXT];
    char name[TEXT];
    unsigned long long total, used;
    unsigned util;
    int lost;
    int migs;
} gpu_t;

typedef struct {
    int present;
    unsigned parent;
    char uuid[TEXT];
    char name[TEXT];
    unsigned long long total, used;
} mig_t;

typedef struct {
    unsigned gpu;
    unsigned pid;
    unsigned long long used;
    char mig[TEXT];
} proc_t;

typedef struct {
    int init_fails;
    char driver[TEXT];
    int cuda;
    gpu_t gpus[MAX_GPUS];
    unsigned gpu_count;
    mig_t migs[MAX_MIGS];
    unsigned mig_count;
    proc_t procs[MAX_PROCS];
    unsigned proc_count;
    char fails[32][64];
    unsigned fail_count;
} config_t;

/* Handles are pointers into these, stable across re-reads. */
static gpu_t gpu_slots[MAX_GPUS];
static mig_t mig_slots[MAX_MIGS];
static config_t cfg;
static int initialized;

static void rest_of_line(const char *line, int skip, char *out) {
    const char *p = line;
    for (int i = 0; i < skip && *p; i++) {
        while (*p && *p != ' ' && *p != '\t') p++;
        while (*p == ' ' || *p == '\t') p++;
    }
    snprintf(out, TEXT, "%s", p);
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = 0;
}

static void load(void) {
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.driver, TEXT, "550.54.15");
    cfg.cuda = 12040;
    const char *path = getenv("GSP_MOCK_NVML");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char word[32] = {0};
        if (line[0] == '#' || sscanf(line, "%31s", word) != 1) continue;
        if (!strcmp(word, "init-fails")) {
            cfg.init_fails = 1;
        } else if (!strcmp(word, "driver")) {
            rest_of_line(line, 1, cfg.driver);
        } else if (!strcmp(word, "cuda")) {
            sscanf(line, "%*s %d", &cfg.cuda);
        } else if (!strcmp(word, "gpu") && cfg.gpu_count < MAX_GPUS) {
            gpu_t g = {0};
            if (sscanf(line, "%*s %u %95s %llu %llu %u", &g.index, g.uuid, &g.total, &g.used,
                       &g.util) == 5) {
                rest_of_line(line, 6, g.name);
                g.present = 1;
                cfg.gpus[cfg.gpu_count++] = g;
            }
        } else if (!strcmp(word, "mig") && cfg.mig_count < MAX_MIGS) {
            mig_t m = {0};
            if (sscanf(line, "%*s %u %95s %llu %llu", &m.parent, m.uuid, &m.total, &m.used) == 4) {
                rest_of_line(line, 5, m.name);
                m.present = 1;
                cfg.migs[cfg.mig_count++] = m;
            }
        } else if (!strcmp(word, "proc") && cfg.proc_count < MAX_PROCS) {
            proc_t p = {0};
            if (sscanf(line, "%*s %u %u %llu %95s", &p.gpu, &p.pid, &p.used, p.mig) >= 3) {
                cfg.procs[cfg.proc_count++] = p;
            }
        } else if (!strcmp(word, "lost")) {
            unsigned i;
            if (sscanf(line, "%*s %u", &i) == 1) {
                for (unsigned k = 0; k < cfg.gpu_count; k++)
                    if (cfg.gpus[k].index == i) cfg.gpus[k].lost = 1;
            }
        } else if (!strcmp(word, "fail") && cfg.fail_count < 32) {
            sscanf(line, "%*s %63s", cfg.fails[cfg.fail_count++]);
        }
    }
    fclose(f);
    for (unsigned k = 0; k < cfg.mig_count; k++)
        for (unsigned g = 0; g < cfg.gpu_count; g++)
            if (cfg.gpus[g].index == cfg.migs[k].parent) cfg.gpus[g].migs++;
    for (unsigned k = 0; k < MAX_GPUS; k++) gpu_slots[k] = k < cfg.gpu_count ? cfg.gpus[k] : (gpu_t){0};
    for (unsigned k = 0; k < MAX_MIGS; k++) mig_slots[k] = k < cfg.mig_count ? cfg.migs[k] : (mig_t){0};
}

static int failing(const char *fn) {
    for (unsigned k = 0; k < cfg.fail_count; k++)
        if (!strcmp(cfg.fails[k], fn)) return 1;
    return 0;
}

/* Re-reads the file; the error a call of `fn` answers, if any. */
static nvmlReturn_t enter(const char *fn) {
    load();
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (failing(fn)) return NVML_ERROR_UNKNOWN;
    return NVML_SUCCESS;
}

static gpu_t *as_gpu(void *h) {
    gpu_t *g = (gpu_t *)h;
    if (g >= gpu_slots && g < gpu_slots + MAX_GPUS && g->present) return g;
    return NULL;
}

static mig_t *as_mig(void *h) {
    mig_t *m = (mig_t *)h;
    if (m >= mig_slots && m < mig_slots + MAX_MIGS && m->present) return m;
    return NULL;
}

static nvmlReturn_t copy_text(const char *s, char *out, unsigned len) {
    if (!out || strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(out, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    load();
    if (cfg.init_fails) return NVML_ERROR_DRIVER_NOT_LOADED;
    initialized = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned flags) {
    (void)flags;
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void) {
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length) {
    nvmlReturn_t r = enter("nvmlSystemGetDriverVersion");
    return r ? r : copy_text(cfg.driver, version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned length) {
    nvmlReturn_t r = enter("nvmlSystemGetNVMLVersion");
    return r ? r : copy_text("12.550.54.15", version, length);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    nvmlReturn_t r = enter("nvmlSystemGetCudaDriverVersion_v2");
    if (r) return r;
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    *version = cfg.cuda;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    return nvmlSystemGetCudaDriverVersion_v2(version);
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count) {
    nvmlReturn_t r = enter("nvmlDeviceGetCount_v2");
    if (r) return r;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = cfg.gpu_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, void **device) {
    nvmlReturn_t r = enter("nvmlDeviceGetHandleByIndex_v2");
    if (r) return r;
    if (!device) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned k = 0; k < cfg.gpu_count; k++) {
        if (gpu_slots[k].index == index) {
            if (gpu_slots[k].lost) return NVML_ERROR_GPU_IS_LOST;
            *device = &gpu_slots[k];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_INVALID_ARGUMENT;
}

/* The device's state, or the error its calls answer. */
#define DEVICE(fn)                                                  \
    nvmlReturn_t r = enter(fn);                                     \
    if (r) return r;                                                \
    gpu_t *g = as_gpu(device);                                      \
    mig_t *m = g ? NULL : as_mig(device);                           \
    if (!g && !m) return NVML_ERROR_INVALID_ARGUMENT;               \
    if (g && g->lost) return NVML_ERROR_GPU_IS_LOST;

nvmlReturn_t nvmlDeviceGetName(void *device, char *name, unsigned length) {
    DEVICE("nvmlDeviceGetName")
    return copy_text(g ? g->name : m->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(void *device, char *uuid, unsigned length) {
    DEVICE("nvmlDeviceGetUUID")
    return copy_text(g ? g->uuid : m->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetIndex(void *device, unsigned *index) {
    DEVICE("nvmlDeviceGetIndex")
    if (!index) return NVML_ERROR_INVALID_ARGUMENT;
    *index = g ? g->index : m->parent;
    return NVML_SUCCESS;
}

typedef struct {
    unsigned version;
    unsigned long long total, reserved, free, used;
} memory_v2_t;

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(void *device, memory_v2_t *memory) {
    DEVICE("nvmlDeviceGetMemoryInfo_v2")
    if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long total = g ? g->total : m->total, used = g ? g->used : m->used;
    memory->total = total;
    memory->used = used;
    memory->free = used < total ? total - used : 0;
    memory->reserved = 0;
    return NVML_SUCCESS;
}

typedef struct {
    unsigned gpu, memory;
} utilization_t;

nvmlReturn_t nvmlDeviceGetUtilizationRates(void *device, utilization_t *u) {
    DEVICE("nvmlDeviceGetUtilizationRates")
    if (!u) return NVML_ERROR_INVALID_ARGUMENT;
    if (m) return NVML_ERROR_NOT_SUPPORTED;
    u->gpu = g->util;
    u->memory = g->util;
    return NVML_SUCCESS;
}

typedef struct {
    unsigned pid;
    unsigned long long used;
    unsigned gpu_instance, compute_instance;
} process_t;

/* Whether process k runs on the device: any of a GPU's (its MIG instances'
 * included), or those of a MIG instance. */
static int runs_on(unsigned k, gpu_t *g, mig_t *m) {
    if (g) return cfg.procs[k].gpu == g->index;
    return cfg.procs[k].gpu == m->parent && !strcmp(cfg.procs[k].mig, m->uuid);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *device, unsigned *count,
                                                     process_t *infos) {
    DEVICE("nvmlDeviceGetComputeRunningProcesses_v3")
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned n = 0;
    for (unsigned k = 0; k < cfg.proc_count; k++)
        if (runs_on(k, g, m)) n++;
    if (!infos || *count < n) {
        *count = n;
        return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned i = 0;
    for (unsigned k = 0; k < cfg.proc_count; k++) {
        if (!runs_on(k, g, m)) continue;
        infos[i].pid = cfg.procs[k].pid;
        infos[i].used = cfg.procs[k].used;
        infos[i].gpu_instance = 0xFFFFFFFF;
        infos[i].compute_instance = 0xFFFFFFFF;
        i++;
    }
    *count = i;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(void *device, unsigned *count,
                                                      process_t *infos) {
    DEVICE("nvmlDeviceGetGraphicsRunningProcesses_v3")
    (void)infos;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(void *device, unsigned *current, unsigned *pending) {
    DEVICE("nvmlDeviceGetMigMode")
    if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    if (m) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = g->migs > 0 ? 1 : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(void *device, unsigned *count) {
    DEVICE("nvmlDeviceGetMaxMigDeviceCount")
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    if (m) return NVML_ERROR_NOT_SUPPORTED;
    *count = g->migs > 0 ? 7 : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(void *device, unsigned index, void **mig) {
    DEVICE("nvmlDeviceGetMigDeviceHandleByIndex")
    if (!mig) return NVML_ERROR_INVALID_ARGUMENT;
    if (m) return NVML_ERROR_NOT_SUPPORTED;
    unsigned seen = 0;
    for (unsigned k = 0; k < cfg.mig_count; k++) {
        if (mig_slots[k].parent != g->index) continue;
        if (seen++ == index) {
            *mig = &mig_slots[k];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}
