/*
 * A stand-in for the CUDA driver (libcuda.so.1) that scripts/gpu-check.sh
 * asks which devices a job sees, so the script can be exercised without a
 * GPU: like the real driver it honours CUDA_VISIBLE_DEVICES (here: only a
 * comma-separated list of UUIDs, which is what gsp sets), and an empty value
 * means no device. Unset, it offers one device of UUID 0.
 *   cc -shared -fPIC -o libcuda.so.1 fake_libcuda.c
 */
#include <stdlib.h>
#include <string.h>

typedef struct { char bytes[16]; } CUuuid;

static int count(void) {
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    if (!v) return 1;
    if (!*v) return 0;
    int n = 1;
    for (; *v; v++) n += *v == ',';
    return n;
}

int cuInit(unsigned flags) { (void)flags; return count() ? 0 : 100; }
int cuDeviceGetCount(int *n) { *n = count(); return 0; }
int cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return ordinal < count() ? 0 : 101; }

int cuDeviceGetUuid(CUuuid *out, int dev) {
    memset(out, 0, sizeof *out);
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    if (!v) return 0;
    for (int i = 0; i < dev && v; i++) {
        v = strchr(v, ',');
        if (v) v++;
    }
    if (!v) return 101;
    const char *hex = strchr(v, '-');
    hex = hex ? hex + 1 : v;
    int k = 0;
    for (; *hex && *hex != ',' && k < 32; hex++) {
        char c = *hex;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) continue;
        out->bytes[k / 2] |= (char)(k % 2 ? d : d << 4);
        k++;
    }
    return 0;
}
