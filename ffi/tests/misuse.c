/* Misuse of the C ABI: every case must return an error status with a clear message, never
 * crash. Run by scripts/test (and under valgrind). Usage: ./misuse MODEL.sod2 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sod2.h"

static int failures = 0;

static void expect(const char *what, sod2_status got, sod2_status want, const char *msg_part) {
  const char *msg = sod2_last_error();
  if (got != want || strstr(msg, msg_part) == NULL) {
    fprintf(stderr, "FAIL %s: status %d (want %d), message \"%s\" (want \"%s\")\n", what, (int)got, (int)want, msg, msg_part);
    failures++;
  } else {
    printf("ok   %s: %s\n", what, msg);
  }
}

/* Runs the session on a fresh thread, whose kernel buffers have not grown yet, under a kernel
 * memory cap of one byte: the run must be refused (the message is read on that thread). */
static void *run_capped_on_fresh_thread(void *session) {
  expect("run past the kernel memory cap (fresh thread)", sod2_session_run((sod2_session *)session), SOD2_ERR_INPUT, "bytes, limit 1");
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  sod2_plan *plan = NULL;
  sod2_session *s = NULL;

  expect("null path", sod2_plan_load(NULL, &plan), SOD2_ERR_INVALID_ARGUMENT, "`path` is null");
  expect("missing file", sod2_plan_load("/no/such.sod2", &plan), SOD2_ERR_IO, "cannot read plan");
  unsigned char junk[100];
  memset(junk, 0x5a, sizeof junk);
  expect("garbage bytes", sod2_plan_load_bytes(junk, sizeof junk, &plan), SOD2_ERR_PLAN, "bad magic");

  /* a corrupted copy of the real plan */
  FILE *f = fopen(argv[1], "rb");
  if (!f) return 2;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *bytes = malloc((size_t)len);
  if (fread(bytes, 1, (size_t)len, f) != (size_t)len) return 2;
  fclose(f);
  bytes[200] ^= 0x20;
  expect("corrupted plan", sod2_plan_load_bytes(bytes, (size_t)len, &plan), SOD2_ERR_PLAN, "checksum");
  expect("truncated plan", sod2_plan_load_bytes(bytes, 40, &plan), SOD2_ERR_PLAN, "truncated");
  bytes[200] ^= 0x20;
  if (sod2_plan_load_bytes(bytes, (size_t)len, &plan) != SOD2_OK) return 3;
  free(bytes);

  expect("null plan handle", sod2_session_create(NULL, &s), SOD2_ERR_INVALID_HANDLE, "invalid plan handle");
  expect("foreign plan handle", sod2_session_create((sod2_plan *)junk, &s), SOD2_ERR_INVALID_HANDLE, "invalid plan handle");
  if (sod2_session_create(plan, &s) != SOD2_OK) return 3;
  /* each handle type has its own registry: a live handle of the other type is rejected */
  sod2_session *s2 = NULL;
  expect("session handle as a plan", sod2_session_create((sod2_plan *)s, &s2), SOD2_ERR_INVALID_HANDLE, "invalid plan handle");
  expect("plan handle as a session", sod2_session_run((sod2_session *)plan), SOD2_ERR_INVALID_HANDLE, "invalid session handle");

  expect("zero threads", sod2_session_set_threads(s, 0), SOD2_ERR_RUN, "0 threads: expected 1..=256");
  expect("threads on a null session", sod2_session_set_threads(NULL, 2), SOD2_ERR_INVALID_HANDLE, "invalid session handle");
  expect("run before inputs", sod2_session_run(s), SOD2_ERR_STATE, "input 0 is not set");
  size_t dims[2] = {1, 5};
  int64_t ids[5] = {2, 3, 4, 5, 6};
  float wrong[5] = {0};
  expect("bad dtype code", sod2_session_set_input(s, 0, 99, dims, 2, ids, sizeof ids), SOD2_ERR_INVALID_ARGUMENT, "unknown dtype code 99");
  expect("input index out of range", sod2_session_set_input(s, 7, SOD2_I64, dims, 2, ids, sizeof ids), SOD2_ERR_INVALID_ARGUMENT, "out of range");
  sod2_session_set_input(s, 0, SOD2_F32, dims, 2, wrong, sizeof wrong);
  sod2_session_set_input(s, 1, SOD2_I64, dims, 2, ids, sizeof ids);
  expect("wrong dtype", sod2_session_run(s), SOD2_ERR_INPUT, "element type f32, the model expects i64");
  sod2_session_set_input(s, 0, SOD2_I64, dims, 2, ids, 16);
  expect("wrong buffer size", sod2_session_run(s), SOD2_ERR_INPUT, "16 bytes given");
  size_t big[2] = {1, 999};
  sod2_session_set_input(s, 0, SOD2_I64, big, 2, ids, sizeof ids);
  expect("dim out of range", sod2_session_prepare(s, NULL), SOD2_ERR_INPUT, "outside the declared range");
  sod2_session_set_input(s, 0, SOD2_I64, dims, 2, ids, sizeof ids);
  float out[4];
  expect("output before run", sod2_session_copy_output(s, 0, out, sizeof out), SOD2_ERR_STATE, "call sod2_session_run first");
  if (sod2_session_run(s) != SOD2_OK) {
    fprintf(stderr, "valid run failed: %s\n", sod2_last_error());
    return 3;
  }
  /* a memory limit below what a shape needs: an error, and the session lives on */
  size_t arena = 0;
  if (sod2_session_prepare(s, &arena) != SOD2_OK) return 3;
  expect("memory limit on a null session", sod2_session_set_memory_limit(NULL, 1), SOD2_ERR_INVALID_HANDLE, "invalid session handle");
  if (sod2_session_set_memory_limit(s, arena) != SOD2_OK) return 3;
  size_t large[2] = {8, 128};
  int64_t *many = calloc(8 * 128, sizeof *many);
  sod2_session_set_input(s, 0, SOD2_I64, large, 2, many, 8 * 128 * sizeof *many);
  sod2_session_set_input(s, 1, SOD2_I64, large, 2, many, 8 * 128 * sizeof *many);
  expect("prepare past the memory limit", sod2_session_prepare(s, NULL), SOD2_ERR_INPUT, "bytes, limit");
  expect("run past the memory limit", sod2_session_run(s), SOD2_ERR_INPUT, "the arena");
  sod2_session_set_input(s, 0, SOD2_I64, dims, 2, ids, sizeof ids);
  sod2_session_set_input(s, 1, SOD2_I64, dims, 2, ids, sizeof ids);
  if (sod2_session_run(s) != SOD2_OK) {
    fprintf(stderr, "run after a refused shape failed: %s\n", sod2_last_error());
    return 3;
  }
  if (sod2_session_set_memory_limit(s, 0) != SOD2_OK) return 3;
  /* the kernels' process-wide cap: a larger shape whose working memory must grow is refused,
     then runs once the cap is lifted */
  if (sod2_set_kernel_memory_limit(1) != SOD2_OK) return 3;
  pthread_t fresh;
  if (pthread_create(&fresh, NULL, run_capped_on_fresh_thread, s) != 0) return 3;
  pthread_join(fresh, NULL);
  if (sod2_set_kernel_memory_limit(0) != SOD2_OK) return 3;
  if (sod2_session_run(s) != SOD2_OK) {
    fprintf(stderr, "run after lifting the kernel cap failed: %s\n", sod2_last_error());
    return 3;
  }
  free(many);
  expect("output buffer too small", sod2_session_copy_output(s, 0, out, sizeof out), SOD2_ERR_INVALID_ARGUMENT, "the buffer has 16");
  expect("null out pointer", sod2_session_output_info(s, 0, NULL, NULL, NULL, NULL), SOD2_ERR_INVALID_ARGUMENT, "is null");

  if (sod2_session_destroy(s) != SOD2_OK) return 3;
  expect("closed session", sod2_session_run(s), SOD2_ERR_INVALID_HANDLE, "invalid session handle");
  expect("double destroy", sod2_session_destroy(s), SOD2_ERR_INVALID_HANDLE, "invalid session handle");
  if (sod2_plan_destroy(plan) != SOD2_OK) return 3;
  expect("closed plan", sod2_session_create(plan, &s), SOD2_ERR_INVALID_HANDLE, "invalid plan handle");
  printf("%d passed, %d failed\n", 27 - failures, failures);
  return failures ? 1 : 0;
}
