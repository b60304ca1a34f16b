/* A stand-in libnvidia-ml.so.1 for tests: one GPU with fixed readings, so the real pynvml
 * (nvidia-ml-py) runs its own ctypes code against it without a GPU.
 *
 * Build: cc -shared -fPIC -o DIR/libnvidia-ml.so.1 stub_nvml.c [-DNEW_DRIVER]
 * Without NEW_DRIVER it is an older driver: no nvmlDeviceGetMemoryInfo_v2 and no
 * *RunningProcesses_v3 symbols (only _v2), as drivers before R510 were.
 * Memory: 80 GiB total, 1 GiB reserved by the driver, 10 GiB used by processes; the v1
 * struct counts the reserved GiB as used (11 GiB), the v2 struct does not. */
#include <string.h>

typedef unsigned int uint;
typedef unsigned long long ull;
typedef struct { int unused; } gpu_t;
static gpu_t the_gpu;

typedef struct { ull total, free, used; } mem_v1;
typedef struct { uint version; ull total, reserved, free, used; } mem_v2;
typedef struct { uint gpu, memory; } util_t;
typedef struct { uint pid; ull usedGpuMemory; uint gpuInstanceId, computeInstanceId; } proc_t;

#define GiB (1024ULL * 1024ULL * 1024ULL)
#define OK 0
#define INVALID 2
#define INSUFFICIENT 7

int nvmlInitWithFlags(uint flags) { (void)flags; return OK; }
int nvmlInit_v2(void) { return OK; }
int nvmlShutdown(void) { return OK; }
const char *nvmlErrorString(int r) { (void)r; return "stub"; }
int nvmlSystemGetDriverVersion(char *v, uint n) { strncpy(v, "470.256.02", n); return OK; }
int nvmlDeviceGetCount_v2(uint *n) { *n = 1; return OK; }
int nvmlDeviceGetHandleByIndex_v2(uint i, gpu_t **h) {
    if (i != 0) return INVALID;
    *h = &the_gpu; return OK;
}
int nvmlDeviceGetHandleByUUID(const char *u, gpu_t **h) { (void)u; *h = &the_gpu; return OK; }
int nvmlDeviceGetName(gpu_t *h, char *s, uint n) { (void)h; strncpy(s, "Stub A100", n); return OK; }
int nvmlDeviceGetUUID(gpu_t *h, char *s, uint n) {
    (void)h; strncpy(s, "GPU-5705b000-0000-4000-8000-000000000001", n); return OK;
}
int nvmlDeviceGetPowerUsage(gpu_t *h, uint *mw) { (void)h; *mw = 300000; return OK; }
int nvmlDeviceGetTotalEnergyConsumption(gpu_t *h, ull *mj) { (void)h; *mj = 123456789ULL; return OK; }
int nvmlDeviceGetTemperature(gpu_t *h, int s, uint *c) { (void)h; (void)s; *c = 51; return OK; }
int nvmlDeviceGetClockInfo(gpu_t *h, int t, uint *mhz) { (void)h; *mhz = t == 0 ? 1410 : 1215; return OK; }
int nvmlDeviceGetUtilizationRates(gpu_t *h, util_t *u) { (void)h; u->gpu = 88; u->memory = 30; return OK; }
int nvmlDeviceGetEnforcedPowerLimit(gpu_t *h, uint *mw) { (void)h; *mw = 400000; return OK; }

int nvmlDeviceGetMemoryInfo(gpu_t *h, mem_v1 *m) {
    (void)h; m->total = 80 * GiB; m->used = 11 * GiB; m->free = 69 * GiB; return OK;
}

static int procs(uint *count, proc_t *out) {
    if (out == 0 || *count < 1) { *count = 1; return INSUFFICIENT; }
    out[0].pid = 4242; out[0].usedGpuMemory = 3 * GiB;
    out[0].gpuInstanceId = 0xFFFFFFFF; out[0].computeInstanceId = 0xFFFFFFFF;
    *count = 1; return OK;
}
static int none(uint *count, proc_t *out) { (void)out; *count = 0; return OK; }
int nvmlDeviceGetComputeRunningProcesses_v2(gpu_t *h, uint *c, proc_t *p) { (void)h; return procs(c, p); }
int nvmlDeviceGetGraphicsRunningProcesses_v2(gpu_t *h, uint *c, proc_t *p) { (void)h; return none(c, p); }

#ifdef NEW_DRIVER
int nvmlDeviceGetMemoryInfo_v2(gpu_t *h, mem_v2 *m) {
    (void)h;
    if (m->version != 0x02000028) return 25; /* NVML_ERROR_ARGUMENT_VERSION_MISMATCH */
    m->total = 80 * GiB; m->reserved = 1 * GiB; m->used = 10 * GiB; m->free = 69 * GiB;
    return OK;
}
int nvmlDeviceGetComputeRunningProcesses_v3(gpu_t *h, uint *c, proc_t *p) { (void)h; return procs(c, p); }
int nvmlDeviceGetGraphicsRunningProcesses_v3(gpu_t *h, uint *c, proc_t *p) { (void)h; return none(c, p); }
#endif
