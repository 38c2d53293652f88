/* CPU-bound benchmark workload for bench/run.py (built at bench time with frame pointers).
 *
 * usage: workload ITERATIONS [THREADS]
 *
 * Each thread does ITERATIONS units of fixed integer work through a small tree of
 * non-inlined functions with data-dependent recursion depth, so profilers see a few
 * hundred distinct stacks. It prints one line:
 *
 *   elapsed_s=<s> cpu_s=<s> iterations=<n> threads=<t>
 *
 * elapsed_s is CLOCK_MONOTONIC around the work only (thread start to the last join);
 * cpu_s is the process CPU time (CLOCK_PROCESS_CPUTIME_ID) over the same span: unlike
 * elapsed time it does not grow when other programs take the CPUs, but it does include
 * the kernel's sampling work done in this process's context (interrupts).
 * ITERATIONS = 0 runs until killed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

static volatile uint64_t sink;

NOINLINE static uint64_t mix_a(uint64_t x) {
    for (int i = 0; i < 64; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x;
}

NOINLINE static uint64_t mix_b(uint64_t x) {
    for (int i = 0; i < 48; i++) x ^= (x << 13) ^ (x >> 7) ^ (x << 17);
    return x;
}

NOINLINE static uint64_t mix_c(uint64_t x) {
    for (int i = 0; i < 32; i++) x = (x >> 3) + (x << 5) + (uint64_t)i * 0x9E3779B97F4A7C15ULL;
    return x;
}

NOINLINE static uint64_t descend(uint64_t x, int depth);

NOINLINE static uint64_t branch_left(uint64_t x, int depth) {
    return descend(mix_a(x), depth - 1) + 1;
}

NOINLINE static uint64_t branch_right(uint64_t x, int depth) {
    return descend(mix_b(x), depth - 1) + 2;
}

NOINLINE static uint64_t descend(uint64_t x, int depth) {
    if (depth <= 0) return mix_c(x);
    return (x & 1) ? branch_left(x >> 1, depth) : branch_right(x >> 1, depth);
}

NOINLINE static uint64_t unit_of_work(uint64_t seed) {
    uint64_t acc = 0;
    for (int k = 0; k < 4; k++) acc += descend(seed + (uint64_t)k, (int)(seed % 7) + 1);
    return acc;
}

struct job {
    uint64_t iterations;
    uint64_t seed;
};

static void *worker(void *arg) {
    struct job *job = arg;
    uint64_t acc = job->seed;
    for (uint64_t i = 0; job->iterations == 0 || i < job->iterations; i++)
        acc += unit_of_work(acc ^ i);
    sink = acc;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ITERATIONS [THREADS]\n", argv[0]);
        return 2;
    }
    uint64_t iterations = strtoull(argv[1], NULL, 10);
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (threads < 1 || threads > 256) threads = 1;
    pthread_t tids[256];
    struct job jobs[256];
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int t = 0; t < threads; t++) {
        jobs[t].iterations = iterations;
        jobs[t].seed = 0x1234567ULL * (uint64_t)(t + 1);
        if (pthread_create(&tids[t], NULL, worker, &jobs[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    printf("elapsed_s=%.6f cpu_s=%.6f iterations=%llu threads=%d\n", elapsed, cpu,
           (unsigned long long)iterations, threads);
    return 0;
}
