/*
 * The C half of bench/run.sh: loads an HNSW index file through the C ABI,
 * reads queries from an .fvecs or .bvecs file, and times single-threaded
 * k-NN searches at a given ef. Prints the best pass's queries per second
 * by the wall clock (qps) and by the thread's CPU clock (cpu_qps, steadier
 * on a busy machine), and a checksum of every label returned (bench_rust
 * prints the same checksum when it did the same work).
 *
 *   bench_capi INDEX QUERIES K EF PASSES
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "swann.h"

/* Reads every row of an .fvecs (4-byte floats) or .bvecs (bytes) file:
 * each row is a little-endian int32 dimension, then that many values.
 * Returns a malloc'd row-major array (caller frees), or NULL. */
static float *read_vecs(const char *path, size_t *rows, size_t *dim) {
    size_t len = strlen(path);
    int bytes;
    if (len > 6 && strcmp(path + len - 6, ".fvecs") == 0)
        bytes = 4;
    else if (len > 6 && strcmp(path + len - 6, ".bvecs") == 0)
        bytes = 1;
    else {
        fprintf(stderr, "%s: expected an .fvecs or .bvecs file\n", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    float *out = NULL;
    size_t n = 0, cap = 0, d = 0;
    unsigned char *row = NULL;
    int32_t rd;
    while (fread(&rd, 4, 1, f) == 1) {
        if (rd <= 0 || (d != 0 && (size_t)rd != d)) {
            fprintf(stderr, "%s: row %zu has dimension %d\n", path, n, rd);
            goto fail;
        }
        if (d == 0) {
            d = (size_t)rd;
            row = malloc(d * 4);
            if (!row) goto fail;
        }
        if (fread(row, (size_t)bytes, d, f) != d) {
            fprintf(stderr, "%s: row %zu is truncated\n", path, n);
            goto fail;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            float *grown = realloc(out, cap * d * sizeof(float));
            if (!grown) goto fail;
            out = grown;
        }
        for (size_t j = 0; j < d; j++) {
            float v;
            if (bytes == 4)
                memcpy(&v, row + 4 * j, 4);
            else
                v = (float)row[j];
            out[n * d + j] = v;
        }
        n++;
    }
    fclose(f);
    free(row);
    if (n == 0) {
        fprintf(stderr, "%s: no rows\n", path);
        free(out);
        return NULL;
    }
    *rows = n;
    *dim = d;
    return out;
fail:
    fclose(f);
    free(row);
    free(out);
    return NULL;
}

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s INDEX QUERIES K EF PASSES\n", argv[0]);
        return 2;
    }
    size_t k = strtoul(argv[3], NULL, 10);
    long long ef = strtoll(argv[4], NULL, 10);
    int passes = atoi(argv[5]);
    if (k == 0 || passes < 1) {
        fprintf(stderr, "K and PASSES must be at least 1\n");
        return 2;
    }
    size_t nq, dim;
    float *queries = read_vecs(argv[2], &nq, &dim);
    if (!queries) return 1;
    SwannHnsw *index = NULL;
    if (swann_hnsw_load(argv[1], &index) != SWANN_STATUS_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], swann_last_error_message());
        return 1;
    }
    uint64_t *labels = malloc(k * sizeof(uint64_t));
    float *dists = malloc(k * sizeof(float));
    if (!labels || !dists) return 1;
    double best = 1e300, best_cpu = 1e300;
    uint64_t checksum = 0;
    for (int p = 0; p < passes; p++) {
        checksum = 0;
        double start = seconds(CLOCK_MONOTONIC);
        double cpu_start = seconds(CLOCK_THREAD_CPUTIME_ID);
        for (size_t i = 0; i < nq; i++) {
            size_t count = 0;
            SwannStatus st = swann_hnsw_search(index, queries + i * dim, dim, k, ef, labels, dists, &count);
            if (st != SWANN_STATUS_OK) {
                fprintf(stderr, "query %zu: %s\n", i, swann_last_error_message());
                return 1;
            }
            for (size_t j = 0; j < count; j++) checksum = checksum * 31 + labels[j];
        }
        double cpu = seconds(CLOCK_THREAD_CPUTIME_ID) - cpu_start;
        double t = seconds(CLOCK_MONOTONIC) - start;
        if (t < best) best = t;
        if (cpu < best_cpu) best_cpu = cpu;
    }
    printf("c queries=%zu k=%zu ef=%lld qps=%.1f cpu_qps=%.1f checksum=%llu\n", nq, k, ef,
           (double)nq / best, (double)nq / best_cpu, (unsigned long long)checksum);
    swann_hnsw_free(index);
    free(queries);
    free(labels);
    free(dists);
    return 0;
}
