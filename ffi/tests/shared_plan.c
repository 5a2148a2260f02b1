/* One plan shared by sessions on several threads, for valgrind's thread checkers (helgrind,
 * DRD) and as a plain test: the main thread loads the plan and computes reference outputs on
 * its own session; THREADS (4) threads each create a session on the shared plan (threads 0 and 2 with 2
 * intra-op threads, so a session's worker pool is in play), wait until the main thread has
 * destroyed its plan handle (the sessions keep the plan alive), run 3 shapes twice each,
 * compare every output byte with the reference, and destroy their session. Run by
 * scripts/thread-check.sh. Inputs: the codebert_tiny sample plan's (token ids, mask of 1s).
 * Usage: ./shared_plan MODEL.sod2 [INTRA [THREADS]] (INTRA: the even threads' intra-op threads, 2
 * by default, 1 leaves out the worker pools; THREADS: 1..=4, 4 by default) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sod2.h"

#define MAX_THREADS 4
#define SHAPES 3
#define OUTPUTS 2

static const size_t shapes[SHAPES][2] = {{1, 7}, {2, 16}, {1, 33}};
static unsigned char *want[SHAPES][OUTPUTS];
static size_t want_len[SHAPES][OUTPUTS];
static pthread_barrier_t created, released;
/* Sessions are created one thread at a time, in order, so valgrind numbers the threads the same
 * way every run: main #1, callers #2.., then each pool's workers in caller order. */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static intptr_t turn = 0;
static sod2_plan *plan;
static size_t intra = 2;
static int threads = MAX_THREADS;

/* Runs `session` at shape `k`; fills `out`/`out_len` with copies of the outputs (malloc'd). */
static int run_shape(sod2_session *session, int k, unsigned char **out, size_t *out_len) {
  size_t n = shapes[k][0] * shapes[k][1];
  int64_t *ids = malloc(n * sizeof(int64_t));
  int64_t *mask = malloc(n * sizeof(int64_t));
  for (size_t i = 0; i < n; i++) {
    ids[i] = (int64_t)((i * 7) % 97 + 2);
    mask[i] = 1;
  }
  int ok = sod2_session_set_input(session, 0, SOD2_I64, shapes[k], 2, ids, n * sizeof(int64_t)) == SOD2_OK &&
           sod2_session_set_input(session, 1, SOD2_I64, shapes[k], 2, mask, n * sizeof(int64_t)) == SOD2_OK &&
           sod2_session_run(session) == SOD2_OK;
  for (size_t o = 0; ok && o < OUTPUTS; o++) {
    sod2_dtype dtype;
    const size_t *dims;
    size_t rank;
    ok = sod2_session_output_info(session, o, &dtype, &dims, &rank, &out_len[o]) == SOD2_OK;
    out[o] = malloc(out_len[o] ? out_len[o] : 1);
    ok = ok && sod2_session_copy_output(session, o, out[o], out_len[o]) == SOD2_OK;
  }
  if (!ok) fprintf(stderr, "run at shape %d failed: %s\n", k, sod2_last_error());
  free(ids);
  free(mask);
  return ok;
}

static void *worker(void *arg) {
  intptr_t t = (intptr_t)arg;
  intptr_t failures = 0;
  sod2_session *s = NULL;
  pthread_mutex_lock(&turn_lock);
  while (turn != t) pthread_cond_wait(&turn_cond, &turn_lock);
  if (sod2_session_create(plan, &s) != SOD2_OK || sod2_session_set_threads(s, t % 2 ? 1 : intra) != SOD2_OK) {
    fprintf(stderr, "thread %d: %s\n", (int)t, sod2_last_error());
    failures++;
  }
  turn++;
  pthread_cond_broadcast(&turn_cond);
  pthread_mutex_unlock(&turn_lock);
  pthread_barrier_wait(&created);
  pthread_barrier_wait(&released); /* the plan handle is destroyed: only the sessions hold it */
  for (int round = 0; s && round < 2 * SHAPES; round++) {
    int k = (int)((round + t) % SHAPES);
    unsigned char *got[OUTPUTS] = {0};
    size_t len[OUTPUTS] = {0};
    if (!run_shape(s, k, got, len)) failures++;
    for (int o = 0; o < OUTPUTS; o++) {
      if (got[o] && (len[o] != want_len[k][o] || memcmp(got[o], want[k][o], len[o]) != 0)) {
        fprintf(stderr, "thread %d, shape %d, output %d differs from the reference\n", (int)t, k, o);
        failures++;
      }
      free(got[o]);
    }
  }
  if (sod2_session_destroy(s) != SOD2_OK) failures++;
  return (void *)failures;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 4) return 2;
  if (argc >= 3) intra = (size_t)atoi(argv[2]);
  if (argc == 4) threads = atoi(argv[3]);
  if (threads < 1 || threads > MAX_THREADS) return 2;
  if (sod2_plan_load(argv[1], &plan) != SOD2_OK) {
    fprintf(stderr, "load: %s\n", sod2_last_error());
    return 2;
  }
  sod2_session *ref = NULL;
  if (sod2_session_create(plan, &ref) != SOD2_OK) return 2;
  for (int k = 0; k < SHAPES; k++)
    if (!run_shape(ref, k, want[k], want_len[k])) return 2;
  if (sod2_session_destroy(ref) != SOD2_OK) return 2;

  pthread_barrier_init(&created, NULL, threads + 1);
  pthread_barrier_init(&released, NULL, threads + 1);
  pthread_t th[MAX_THREADS];
  for (intptr_t t = 0; t < threads; t++) pthread_create(&th[t], NULL, worker, (void *)t);
  pthread_barrier_wait(&created);
  if (sod2_plan_destroy(plan) != SOD2_OK) return 2;
  pthread_barrier_wait(&released);
  intptr_t failures = 0;
  for (int t = 0; t < threads; t++) {
    void *r;
    pthread_join(th[t], &r);
    failures += (intptr_t)r;
  }
  pthread_barrier_destroy(&created);
  pthread_barrier_destroy(&released);
  for (int k = 0; k < SHAPES; k++)
    for (int o = 0; o < OUTPUTS; o++) free(want[k][o]);
  printf("shared plan: %d threads x %d runs, %d failures\n", threads, 2 * SHAPES, (int)failures);
  return failures ? 1 : 0;
}
