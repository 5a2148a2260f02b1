/* sod2 C sample: load a plan, run it at two input shapes, print a summary of every output.
 * Build: cc -Wall -Werror -I ffi/include samples/c/main.c target/release/libsod2.a -lpthread -ldl -lm
 * Run:   ./c_sample model.sod2
 * Inputs are synthetic and deterministic (token ids (i*7)%97+2, attention mask 1), the same the
 * other samples and scripts/samples/check.py use, so the outputs can be compared. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sod2.h"

#define CHECK(call)                                                              \
  do {                                                                           \
    sod2_status st_ = (call);                                                    \
    if (st_ != SOD2_OK) {                                                        \
      fprintf(stderr, "%s failed (%d): %s\n", #call, (int)st_, sod2_last_error()); \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static void run_shape(sod2_session *session, size_t batch, size_t seq) {
  size_t n = batch * seq;
  int64_t *ids = malloc(n * sizeof(int64_t));
  int64_t *mask = malloc(n * sizeof(int64_t));
  for (size_t i = 0; i < n; i++) {
    ids[i] = (int64_t)((i * 7) % 97 + 2);
    mask[i] = 1;
  }
  size_t dims[2] = {batch, seq};
  CHECK(sod2_session_set_input(session, 0, SOD2_I64, dims, 2, ids, n * sizeof(int64_t)));
  CHECK(sod2_session_set_input(session, 1, SOD2_I64, dims, 2, mask, n * sizeof(int64_t)));
  size_t arena = 0;
  CHECK(sod2_session_prepare(session, &arena));
  CHECK(sod2_session_run(session));
  printf("shape batch=%zu seq=%zu arena_bytes=%zu\n", batch, seq, arena);
  for (size_t k = 0; k < 2; k++) {
    sod2_dtype dtype;
    const size_t *odims;
    size_t rank, bytes;
    CHECK(sod2_session_output_info(session, k, &dtype, &odims, &rank, &bytes));
    float *buf = malloc(bytes);
    CHECK(sod2_session_copy_output(session, k, buf, bytes));
    double sum = 0, sum_abs = 0;
    size_t count = bytes / sizeof(float);
    for (size_t i = 0; i < count; i++) {
      sum += buf[i];
      sum_abs += buf[i] < 0 ? -buf[i] : buf[i];
    }
    printf("output %zu dims [", k);
    for (size_t r = 0; r < rank; r++) printf(r ? ", %zu" : "%zu", odims[r]);
    printf("] sum=%.6f mean_abs=%.6f first=%.6f\n", sum, sum_abs / (double)count, (double)buf[0]);
    free(buf);
  }
  free(ids);
  free(mask);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL.sod2\n", argv[0]);
    return 2;
  }
  sod2_plan *plan = NULL;
  CHECK(sod2_plan_load(argv[1], &plan));
  size_t n_in = 0, n_out = 0;
  CHECK(sod2_plan_io_count(plan, &n_in, &n_out));
  printf("sod2 %s: %zu inputs, %zu outputs\n", sod2_version(), n_in, n_out);
  sod2_session *session = NULL;
  CHECK(sod2_session_create(plan, &session));
  CHECK(sod2_session_set_threads(session, 2)); /* intra-op threads: the caller plus one worker */
  run_shape(session, 1, 7);
  run_shape(session, 2, 16);
  CHECK(sod2_session_destroy(session));
  CHECK(sod2_plan_destroy(plan));
  return 0;
}
