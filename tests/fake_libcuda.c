/* A fake libcuda.so.1 for testing pyinfer's CUDA code paths on machines without a GPU.
 *
 * It implements just the driver entry points pyinfer resolves, with host-side semantics: a
 * per-thread context stack, events that store the host time at which they were recorded,
 * host allocations with malloc, and counters (fake_*) a test reads through ctypes. Built by
 * tests/test_cuda_fake_driver.py into a temporary directory as libcuda.so.1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
enum { OK = 0, E_VALUE = 1, E_OOM = 2, E_NOT_INIT = 3, E_CONTEXT = 201, E_HANDLE = 400,
       E_NOT_READY = 600, E_DEVICE = 101 };
#define EVENT_MAGIC 0x5eed

static int initialized;
static int primary[2];  /* two fake devices: their primary contexts are &primary[d] */
static int other_context;
static __thread void* stack[64];
static __thread int depth;

static int sync_count, live_events, live_allocs, records, pushes, retains;

typedef struct {
  int magic;
  unsigned flags;
  void* ctx;
  int recorded;
  double t_ms;
} Event;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static void* current(void) { return depth > 0 ? stack[depth - 1] : NULL; }
static int is_context(void* c) { return c == &primary[0] || c == &primary[1] || c == &other_context; }

CUresult cuInit(unsigned flags) { (void)flags; initialized = 1; return OK; }
CUresult cuDriverGetVersion(int* v) { *v = 12080; return OK; }
CUresult cuDeviceGetCount(int* n) {
  if (!initialized) return E_NOT_INIT;
  const char* env = getenv("FAKE_CUDA_DEVICES");
  *n = env ? atoi(env) : 1;
  return OK;
}
CUresult cuDeviceGet(int* d, int ordinal) {
  if (ordinal < 0 || ordinal > 1) return E_DEVICE;
  *d = ordinal;
  return OK;
}
CUresult cuDeviceGetName(char* name, int len, int d) { snprintf(name, (size_t)len, "Fake GPU %d", d); return OK; }
CUresult cuDeviceTotalMem_v2(size_t* bytes, int d) { (void)d; *bytes = (size_t)80 << 30; return OK; }
CUresult cuDevicePrimaryCtxRetain(void** ctx, int d) { *ctx = &primary[d]; ++retains; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { (void)d; --retains; return OK; }
CUresult cuCtxGetCurrent(void** ctx) { *ctx = current(); return OK; }
CUresult cuCtxSetCurrent(void* ctx) {
  if (depth == 0) stack[depth++] = ctx; else stack[depth - 1] = ctx;
  return OK;
}
CUresult cuCtxPushCurrent_v2(void* ctx) {
  if (!is_context(ctx) || depth == 64) return E_CONTEXT;
  stack[depth++] = ctx;
  ++pushes;
  return OK;
}
CUresult cuCtxPopCurrent_v2(void** ctx) {
  if (depth == 0) return E_CONTEXT;
  *ctx = stack[--depth];
  return OK;
}
/* Stream handles above 2 are "user streams": 0x1000 belongs to the other context. */
CUresult cuStreamGetCtx(void* stream, void** ctx) {
  if ((uintptr_t)stream <= 2) { *ctx = current(); return *ctx ? OK : E_CONTEXT; }
  *ctx = (uintptr_t)stream == 0x1000 ? (void*)&other_context : (void*)&primary[0];
  return OK;
}
CUresult cuStreamSynchronize(void* stream) { (void)stream; ++sync_count; return OK; }

CUresult cuEventCreate(void** event, unsigned flags) {
  if (current() == NULL) return E_CONTEXT;
  Event* e = calloc(1, sizeof(Event));
  if (!e) return E_OOM;
  e->magic = EVENT_MAGIC;
  e->flags = flags;
  e->ctx = current();
  *event = e;
  ++live_events;
  return OK;
}
static Event* event_of(void* p) {
  Event* e = p;
  return e && e->magic == EVENT_MAGIC ? e : NULL;
}
CUresult cuEventRecord(void* event, void* stream) {
  Event* e = event_of(event);
  if (!e) return E_HANDLE;
  void* stream_ctx = NULL;
  if ((uintptr_t)stream <= 2) stream_ctx = current(); else cuStreamGetCtx(stream, &stream_ctx);
  if (stream_ctx == NULL) return E_CONTEXT;
  if (stream_ctx != e->ctx) return E_HANDLE; /* event and stream from different contexts */
  e->recorded = 1;
  e->t_ms = now_ms();
  ++records;
  return OK;
}
CUresult cuEventSynchronize(void* event) { if (!event_of(event)) return E_HANDLE; ++sync_count; return OK; }
CUresult cuEventQuery(void* event) { return event_of(event) ? OK : E_HANDLE; }
CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
  Event* x = event_of(a);
  Event* y = event_of(b);
  if (!x || !y || !x->recorded || !y->recorded || (x->flags & 2) || (y->flags & 2)) return E_HANDLE;
  *ms = (float)(y->t_ms - x->t_ms);
  return OK;
}
CUresult cuEventElapsedTime_v2(float* ms, void* a, void* b) { return cuEventElapsedTime(ms, a, b); }
CUresult cuEventDestroy_v2(void* event) {
  Event* e = event_of(event);
  if (!e) return E_HANDLE;
  e->magic = 0;
  free(e);
  --live_events;
  return OK;
}
CUresult cuMemHostAlloc(void** p, size_t n, unsigned flags) {
  (void)flags;
  if (current() == NULL) return E_CONTEXT;
  if (n > ((size_t)1 << 40)) return E_OOM;
  if (posix_memalign(p, 4096, n) != 0) return E_OOM;
  ++live_allocs;
  return OK;
}
CUresult cuMemFreeHost(void* p) { free(p); --live_allocs; return OK; }
CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
  if (current() == NULL) return E_CONTEXT;
  *free_bytes = (size_t)60 << 30;
  *total = (size_t)80 << 30;
  return OK;
}
CUresult cuGetErrorName(CUresult e, const char** s) {
  *s = e == E_OOM ? "CUDA_ERROR_OUT_OF_MEMORY" : e == E_HANDLE ? "CUDA_ERROR_INVALID_HANDLE"
     : e == E_CONTEXT ? "CUDA_ERROR_INVALID_CONTEXT" : "CUDA_ERROR_FAKE";
  return OK;
}
CUresult cuGetErrorString(CUresult e, const char** s) { (void)e; *s = "fake driver error"; return OK; }

/* Test hooks. */
int fake_sync_count(void) { return sync_count; }
int fake_live_events(void) { return live_events; }
int fake_live_allocs(void) { return live_allocs; }
int fake_records(void) { return records; }
int fake_depth(void) { return depth; }
int fake_pushes(void) { return pushes; }
void* fake_other_context(void) { return &other_context; }
void* fake_primary_context(int d) { return &primary[d]; }
