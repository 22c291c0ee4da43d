/*
 * Tests of the swann C API, through the generated header only: every
 * exported function, its error paths (NULL and misaligned pointers, bad
 * sizes, bad state), the panic hook, and several threads sharing handles.
 *
 * Build: cc -std=c11 -pthread -I capi/include capi/tests/c/test_capi.c \
 *        target/release/libswann_capi.a -lm -ldl -lpthread
 * (or against libswann_capi.so). Run with no arguments; prints the number
 * of checks that passed, and aborts on the first that fails.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "swann.h"

static long checks = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s\n  last error: %s\n", __FILE__,   \
                    __LINE__, #cond, swann_last_error_message());                      \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* The call returns `st`, and the thread's message is non-empty exactly when
 * it failed. */
#define EXPECT(call, st)                                                               \
    do {                                                                               \
        SwannStatus got_ = (call);                                                     \
        if (got_ != (st)) {                                                            \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n  %s\n",    \
                    __FILE__, __LINE__, #call, (int)got_, swann_status_name(got_),     \
                    (int)(st), swann_status_name(st), swann_last_error_message());     \
            abort();                                                                   \
        }                                                                              \
        checks++;                                                                      \
        CHECK(((st) == SWANN_STATUS_OK) == (swann_last_error_message()[0] == '\0'));   \
    } while (0)

#define OK(call) EXPECT(call, SWANN_STATUS_OK)

#define DIM 8
#define N 500

static float data[N * DIM];
static uint64_t labels[N];
static char tmpdir[] = "/tmp/swann_capi_test_XXXXXX";

static void path_in(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xFFFFFF) / (float)0x1000000 * 2.0f - 1.0f;
}

static float l2sq(const float *a, const float *b) {
    float s = 0;
    for (int i = 0; i < DIM; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return s;
}

/* The exact nearest row to q, by brute force. */
static uint64_t brute_nearest(const float *q) {
    uint64_t best = 0;
    float bd = INFINITY;
    for (int i = 0; i < N; i++) {
        float d = l2sq(q, data + i * DIM);
        if (d < bd) bd = d, best = labels[i];
    }
    return best;
}

static int contains_text(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static void test_misc(void) {
    CHECK(strlen(swann_version()) > 0);
    CHECK(strcmp(swann_status_name(SWANN_STATUS_OK), "ok") == 0);
    for (int s = 0; s <= SWANN_STATUS_OTHER; s++)
        CHECK(strcmp(swann_status_name(s), "unknown status") != 0);
    CHECK(strcmp(swann_status_name(99), "unknown status") == 0);
    CHECK(strcmp(swann_status_name(-1), "unknown status") == 0);

    /* The message after a failure, then cleared by a success. */
    SwannHnswParams p;
    EXPECT(swann_hnsw_params_init(NULL), SWANN_STATUS_NULL_POINTER);
    CHECK(contains_text(swann_last_error_message(), "params"));
    char buf[8];
    size_t needed = 0;
    size_t full = strlen(swann_last_error_message()) + 1;
    CHECK(swann_last_error_copy(buf, sizeof buf, &needed) == SWANN_STATUS_BUFFER_TOO_SMALL);
    CHECK(needed == full);
    CHECK(strlen(buf) == sizeof buf - 1);
    CHECK(strncmp(buf, swann_last_error_message(), sizeof buf - 1) == 0);
    /* Copying leaves the message as it was. */
    CHECK(strlen(swann_last_error_message()) + 1 == full);
    CHECK(swann_last_error_copy(NULL, 5, NULL) == SWANN_STATUS_NULL_POINTER);
    CHECK(strlen(swann_last_error_message()) + 1 == full);
    CHECK(swann_last_error_copy(NULL, 0, &needed) == SWANN_STATUS_BUFFER_TOO_SMALL);
    CHECK(needed == full);
    char big[512];
    CHECK(swann_last_error_copy(big, sizeof big, NULL) == SWANN_STATUS_OK);
    CHECK(strcmp(big, swann_last_error_message()) == 0);
    OK(swann_hnsw_params_init(&p));
    CHECK(swann_last_error_message()[0] == '\0');
    CHECK(p.dim == 0 && p.m == 16 && p.ef_construction == 200 && p.seed == 100);
    CHECK(strcmp(p.metric, "l2") == 0 && p.selection == SWANN_SELECTION_HEURISTIC);
}

static void test_panic_hook(void) {
    SwannHnswParams p;
    OK(swann_hnsw_params_init(&p));
    p.dim = 4;
    SwannHnsw *h = NULL;
    OK(swann_hnsw_new(&p, &h));

    swann_debug_panic_next_call(1);
    size_t n = 12345;
    EXPECT(swann_hnsw_count(h, &n), SWANN_STATUS_PANIC);
    CHECK(n == 12345); /* no output on failure */
    CHECK(contains_text(swann_last_error_message(), "panic"));
    CHECK(contains_text(swann_last_error_message(), "swann_debug_panic_next_call"));
    /* The process and the handle carry on. */
    OK(swann_hnsw_count(h, &n));
    CHECK(n == 0);
    /* Armed then disarmed: nothing happens. */
    swann_debug_panic_next_call(1);
    swann_debug_panic_next_call(0);
    OK(swann_hnsw_count(h, &n));
    /* Each kind of function reports a panic the same way. */
    swann_debug_panic_next_call(1);
    SwannForest *f = NULL;
    EXPECT(swann_forest_new(4, "angular", &f), SWANN_STATUS_PANIC);
    CHECK(f == NULL);
    swann_debug_panic_next_call(1);
    EXPECT(swann_flat_free(NULL), SWANN_STATUS_PANIC);
    swann_debug_panic_next_call(1);
    char b[4];
    EXPECT(swann_last_error_copy(b, sizeof b, NULL), SWANN_STATUS_PANIC);
    OK(swann_hnsw_free(h));
}

static void make_data(void) {
    for (int i = 0; i < N * DIM; i++) data[i] = rnd();
    for (int i = 0; i < N; i++) labels[i] = 1000 + (uint64_t)i;
}

static SwannHnsw *build_hnsw(void) {
    SwannHnswParams p;
    OK(swann_hnsw_params_init(&p));
    p.dim = DIM;
    p.m = 8;
    p.ef_construction = 100;
    p.capacity = 100;
    SwannHnsw *h = NULL;
    OK(swann_hnsw_new(&p, &h));
    CHECK(h != NULL);
    OK(swann_hnsw_add(h, labels[0], data, DIM));
    OK(swann_hnsw_add_batch(h, labels + 1, data + DIM, N - 1, DIM, 2));
    return h;
}

static void test_hnsw_create_errors(void) {
    SwannHnswParams p;
    SwannHnsw *h = (SwannHnsw *)0x1;
    OK(swann_hnsw_params_init(&p));
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_INVALID_ARGUMENT); /* dim 0 */
    CHECK(contains_text(swann_last_error_message(), "dim"));
    CHECK(h == (SwannHnsw *)0x1);
    p.dim = DIM;
    EXPECT(swann_hnsw_new(NULL, &h), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_new(&p, NULL), SWANN_STATUS_NULL_POINTER);
    p.metric = "bogus";
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_INVALID_ARGUMENT);
    CHECK(contains_text(swann_last_error_message(), "bogus"));
    p.metric = "angular";
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_INVALID_ARGUMENT);
    p.metric = NULL;
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_NULL_POINTER);
    p.metric = "L2";
    p.m = 1;
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_INVALID_ARGUMENT);
    CHECK(contains_text(swann_last_error_message(), "M must be"));
    p.m = 16;
    p.selection = 7;
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_INVALID_ARGUMENT);
    p.selection = SWANN_SELECTION_SIMPLE;
    p.graph_merging = 9;
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_INVALID_ARGUMENT);
    p.graph_merging = SWANN_GRAPH_MERGING_MERGE_LEVEL0;
    p.level_mult = -1.0;
    EXPECT(swann_hnsw_new(&p, &h), SWANN_STATUS_INVALID_ARGUMENT);
    p.level_mult = 0.5;
    p.m0 = 20;
    CHECK(h == (SwannHnsw *)0x1);
    OK(swann_hnsw_new(&p, &h));
    char cfg[1024];
    size_t needed = 0;
    OK(swann_hnsw_config(h, cfg, sizeof cfg, &needed));
    CHECK(needed == strlen(cfg) + 1);
    CHECK(contains_text(cfg, "dim=8\n"));
    CHECK(contains_text(cfg, "metric=l2\n"));
    CHECK(contains_text(cfg, "M=16\n"));
    CHECK(contains_text(cfg, "M0=20\n"));
    CHECK(contains_text(cfg, "level_mult=0.5\n"));
    CHECK(contains_text(cfg, "selection=simple\n"));
    CHECK(contains_text(cfg, "graph_merging=merge_level0"));
    char small[10];
    EXPECT(swann_hnsw_config(h, small, sizeof small, &needed), SWANN_STATUS_BUFFER_TOO_SMALL);
    CHECK(needed == strlen(cfg) + 1);
    CHECK(strlen(small) == sizeof small - 1 && strncmp(small, cfg, 9) == 0);
    EXPECT(swann_hnsw_config(h, NULL, 10, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_config(NULL, cfg, sizeof cfg, NULL), SWANN_STATUS_NULL_POINTER);
    OK(swann_hnsw_free(h));
    OK(swann_hnsw_free(NULL));

    /* The other metrics HNSW takes. */
    const char *metrics[] = {"ip", "cosine", "dot"};
    for (int i = 0; i < 3; i++) {
        OK(swann_hnsw_params_init(&p));
        p.dim = 3;
        p.metric = metrics[i];
        OK(swann_hnsw_new(&p, &h));
        const char *name = NULL;
        OK(swann_hnsw_metric(h, &name));
        CHECK(strcmp(name, metrics[i]) == 0);
        float v[3] = {3, 0, 4};
        OK(swann_hnsw_add(h, 1, v, 3));
        float back[3];
        OK(swann_hnsw_get_vector(h, 1, back, 3));
        if (i == 1) /* cosine stores the normalized vector */
            CHECK(fabsf(back[0] - 0.6f) < 1e-6f && fabsf(back[2] - 0.8f) < 1e-6f);
        else
            CHECK(back[0] == 3 && back[2] == 4);
        OK(swann_hnsw_free(h));
    }
}

static void test_hnsw(void) {
    SwannHnsw *h = build_hnsw();
    size_t n = 0;
    OK(swann_hnsw_count(h, &n));
    CHECK(n == N);
    OK(swann_hnsw_dim(h, &n));
    CHECK(n == DIM);
    OK(swann_hnsw_capacity(h, &n));
    CHECK(n >= N);
    OK(swann_hnsw_deleted_count(h, &n));
    CHECK(n == 0);
    const char *name = NULL;
    OK(swann_hnsw_metric(h, &name));
    CHECK(strcmp(name, "l2") == 0);
    EXPECT(swann_hnsw_count(NULL, &n), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_count(h, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_dim(h, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_metric(h, NULL), SWANN_STATUS_NULL_POINTER);

    /* Add errors. */
    float bad[DIM];
    memcpy(bad, data, sizeof bad);
    EXPECT(swann_hnsw_add(h, 1, data, DIM - 1), SWANN_STATUS_INVALID_ARGUMENT);
    CHECK(contains_text(swann_last_error_message(), "dimension"));
    EXPECT(swann_hnsw_add(h, 1, NULL, DIM), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_add(NULL, 1, data, DIM), SWANN_STATUS_NULL_POINTER);
    bad[3] = NAN;
    EXPECT(swann_hnsw_add(h, 1, bad, DIM), SWANN_STATUS_INVALID_ARGUMENT);
    CHECK(contains_text(swann_last_error_message(), "finite"));
    /* A misaligned float pointer is refused, not read. */
    char raw[(DIM + 1) * sizeof(float)];
    EXPECT(swann_hnsw_add(h, 1, (const float *)(raw + 1), DIM), SWANN_STATUS_NULL_POINTER);
    CHECK(contains_text(swann_last_error_message(), "aligned"));
    EXPECT(swann_hnsw_add_batch(h, labels, data, 2, DIM, 0), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_add_batch(h, labels, NULL, 2, DIM, 1), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_add_batch(h, NULL, data, 2, DIM, 1), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_add_batch(h, labels, data, 2, DIM + 1, 1), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_add_batch(h, labels, data, SIZE_MAX / 2, DIM, 1), SWANN_STATUS_INVALID_ARGUMENT);
    OK(swann_hnsw_add_batch(h, NULL, NULL, 0, DIM, 1));
    OK(swann_hnsw_count(h, &n));
    CHECK(n == N); /* nothing above added a label */

    /* Search by vector: each stored vector finds itself first. */
    uint64_t out[10];
    float dist[10];
    size_t count = 0;
    int agree = 0;
    for (int i = 0; i < N; i += 25) {
        OK(swann_hnsw_search(h, data + i * DIM, DIM, 10, -1, out, dist, &count));
        CHECK(count == 10);
        CHECK(out[0] == labels[i] && dist[0] == 0.0f);
        for (int j = 1; j < 10; j++) CHECK(dist[j] >= dist[j - 1]);
        /* The reported distance is the squared L2 distance. */
        CHECK(fabsf(dist[1] - l2sq(data + i * DIM, data + (out[1] - 1000) * DIM)) < 1e-4f);
    }
    /* Random queries: the top hit agrees with brute force. */
    for (int t = 0; t < 20; t++) {
        float q[DIM];
        for (int j = 0; j < DIM; j++) q[j] = rnd();
        OK(swann_hnsw_search(h, q, DIM, 1, 100, out, NULL, &count));
        CHECK(count == 1);
        agree += out[0] == brute_nearest(q);
    }
    CHECK(agree >= 19);
    EXPECT(swann_hnsw_search(h, data, DIM, 0, -1, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_search(h, data, DIM, 10, -2, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_search(h, data, DIM - 1, 10, -1, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_search(h, NULL, DIM, 10, -1, out, dist, &count), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_search(h, data, DIM, 10, -1, NULL, dist, &count), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_search(h, data, DIM, 10, -1, out, dist, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_search(NULL, data, DIM, 10, -1, out, dist, &count), SWANN_STATUS_NULL_POINTER);

    /* Search by label. */
    OK(swann_hnsw_search_by_label(h, labels[42], 5, 16, out, dist, &count));
    CHECK(count == 5 && out[0] == labels[42] && dist[0] == 0.0f);
    OK(swann_hnsw_search_by_label(h, labels[43], 3, -1, out, NULL, &count));
    CHECK(count == 3 && out[0] == labels[43]);
    EXPECT(swann_hnsw_search_by_label(h, 7, 5, -1, out, dist, &count), SWANN_STATUS_NOT_FOUND);
    CHECK(contains_text(swann_last_error_message(), "7"));
    EXPECT(swann_hnsw_search_by_label(h, labels[0], 0, -1, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_search_by_label(h, labels[0], 5, -1, NULL, dist, &count), SWANN_STATUS_NULL_POINTER);

    /* Batch search agrees with one-by-one searches, on any thread count. */
    enum { NQ = 20, K = 5 };
    uint64_t bl[NQ * K], sl[NQ * K];
    float bd[NQ * K];
    size_t counts[NQ];
    for (int i = 0; i < NQ; i++) {
        OK(swann_hnsw_search(h, data + i * 7 * DIM, DIM, K, 64, sl + i * K, NULL, &count));
        CHECK(count == K);
    }
    int threads[] = {1, 2, -1};
    for (int t = 0; t < 3; t++) {
        float qs[NQ * DIM];
        for (int i = 0; i < NQ; i++) memcpy(qs + i * DIM, data + i * 7 * DIM, sizeof(float) * DIM);
        memset(bl, 0, sizeof bl);
        OK(swann_hnsw_search_batch(h, qs, NQ, DIM, K, 64, threads[t], bl, bd, counts));
        CHECK(memcmp(bl, sl, sizeof bl) == 0);
        for (int i = 0; i < NQ; i++) CHECK(counts[i] == K && bd[i * K] == 0.0f);
    }
    OK(swann_hnsw_search_batch(h, data, 2, DIM, K, -1, 1, bl, NULL, NULL));
    CHECK(bl[0] == labels[0] && bl[K] == labels[1]);
    OK(swann_hnsw_search_batch(h, NULL, 0, DIM, K, -1, 1, NULL, NULL, NULL));
    EXPECT(swann_hnsw_search_batch(h, data, 2, DIM, K, -1, 0, bl, bd, counts), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_search_batch(h, data, 2, DIM, 0, -1, 1, bl, bd, counts), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_search_batch(h, data, 2, DIM - 1, K, -1, 1, bl, bd, counts), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_search_batch(h, data, 2, DIM, K, -1, 1, NULL, bd, counts), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_search_batch(h, NULL, 2, DIM, K, -1, 1, bl, bd, counts), SWANN_STATUS_NULL_POINTER);

    /* get_vector */
    float v[DIM];
    OK(swann_hnsw_get_vector(h, labels[9], v, DIM));
    CHECK(memcmp(v, data + 9 * DIM, sizeof v) == 0);
    EXPECT(swann_hnsw_get_vector(h, 3, v, DIM), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_hnsw_get_vector(h, labels[9], v, DIM + 1), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_get_vector(h, labels[9], NULL, DIM), SWANN_STATUS_NULL_POINTER);

    /* Deletion marks. */
    int flag = -1;
    OK(swann_hnsw_is_deleted(h, labels[9], &flag));
    CHECK(flag == 0);
    OK(swann_hnsw_mark_deleted(h, labels[9]));
    OK(swann_hnsw_is_deleted(h, labels[9], &flag));
    CHECK(flag == 1);
    OK(swann_hnsw_deleted_count(h, &n));
    CHECK(n == 1);
    OK(swann_hnsw_count(h, &n));
    CHECK(n == N); /* deleted labels still count */
    OK(swann_hnsw_search(h, data + 9 * DIM, DIM, 10, -1, out, dist, &count));
    for (size_t j = 0; j < count; j++) CHECK(out[j] != labels[9]);
    OK(swann_hnsw_get_vector(h, labels[9], v, DIM)); /* still readable */
    OK(swann_hnsw_unmark_deleted(h, labels[9]));
    OK(swann_hnsw_search(h, data + 9 * DIM, DIM, 10, -1, out, dist, &count));
    CHECK(out[0] == labels[9]);
    EXPECT(swann_hnsw_mark_deleted(h, 5), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_hnsw_unmark_deleted(h, 5), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_hnsw_is_deleted(h, 5, &flag), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_hnsw_is_deleted(h, labels[0], NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_mark_deleted(NULL, 5), SWANN_STATUS_NULL_POINTER);
    OK(swann_hnsw_contains(h, labels[0], &flag));
    CHECK(flag == 1);
    OK(swann_hnsw_contains(h, 5, &flag));
    CHECK(flag == 0);

    /* ef default */
    OK(swann_hnsw_get_ef(h, &n));
    CHECK(n == SWANN_HNSW_DEFAULT_EF);
    OK(swann_hnsw_set_ef(h, 32));
    OK(swann_hnsw_get_ef(h, &n));
    CHECK(n == 32);
    EXPECT(swann_hnsw_set_ef(h, 0), SWANN_STATUS_INVALID_ARGUMENT);
    char cfg[1024];
    OK(swann_hnsw_config(h, cfg, sizeof cfg, NULL));
    CHECK(contains_text(cfg, "ef=32\n") && contains_text(cfg, "count=500\n"));

    /* resize */
    EXPECT(swann_hnsw_resize(h, 10), SWANN_STATUS_INVALID_ARGUMENT);
    OK(swann_hnsw_resize(h, 2000));
    OK(swann_hnsw_capacity(h, &n));
    CHECK(n == 2000);

    /* Save, load, map: the same answers. */
    char file[256], other[256];
    path_in(file, sizeof file, "index.hnsw");
    OK(swann_hnsw_save(h, file));
    OK(swann_hnsw_search(h, data + 100 * DIM, DIM, 10, 50, out, dist, &count));
    for (int mode = 0; mode < 3; mode++) {
        SwannHnsw *g = NULL;
        if (mode == 0)
            OK(swann_hnsw_load(file, &g));
        else
            OK(swann_hnsw_open_mmap(file, mode == 2, &g));
        uint64_t out2[10];
        float dist2[10];
        size_t count2 = 0;
        OK(swann_hnsw_search(g, data + 100 * DIM, DIM, 10, 50, out2, dist2, &count2));
        CHECK(count2 == count && memcmp(out, out2, sizeof out) == 0);
        OK(swann_hnsw_count(g, &n));
        CHECK(n == N);
        OK(swann_hnsw_config(g, cfg, sizeof cfg, NULL));
        CHECK(contains_text(cfg, mode == 0 ? "mapped=false" : "mapped=true"));
        /* A mapped index takes changes (it is copied into memory first). */
        OK(swann_hnsw_add(g, 1, data, DIM));
        OK(swann_hnsw_count(g, &n));
        CHECK(n == N + 1);
        OK(swann_hnsw_free(g));
    }
    SwannHnsw *g = (SwannHnsw *)0x1;
    path_in(other, sizeof other, "missing/index.hnsw");
    EXPECT(swann_hnsw_save(h, other), SWANN_STATUS_IO);
    EXPECT(swann_hnsw_load(other, &g), SWANN_STATUS_IO);
    EXPECT(swann_hnsw_open_mmap(other, 0, &g), SWANN_STATUS_IO);
    EXPECT(swann_hnsw_save(h, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_save(h, ""), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_hnsw_load(NULL, &g), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_hnsw_load(file, NULL), SWANN_STATUS_NULL_POINTER);
    path_in(other, sizeof other, "garbage");
    FILE *fp = fopen(other, "wb");
    CHECK(fp != NULL);
    for (int i = 0; i < 4096; i++) fputc(i * 7, fp);
    fclose(fp);
    EXPECT(swann_hnsw_load(other, &g), SWANN_STATUS_FORMAT);
    EXPECT(swann_hnsw_open_mmap(other, 1, &g), SWANN_STATUS_FORMAT);
    CHECK(g == (SwannHnsw *)0x1);
    OK(swann_hnsw_free(h));
}

static void test_hnsw_capacity(void) {
    SwannHnswParams p;
    OK(swann_hnsw_params_init(&p));
    p.dim = DIM;
    p.capacity = 2;
    SwannHnsw *h = NULL;
    OK(swann_hnsw_new(&p, &h));
    OK(swann_hnsw_set_grow(h, 0));
    OK(swann_hnsw_add_batch(h, labels, data, 2, DIM, 1));
    EXPECT(swann_hnsw_add(h, labels[2], data + 2 * DIM, DIM), SWANN_STATUS_INDEX_FULL);
    CHECK(contains_text(swann_last_error_message(), "full"));
    OK(swann_hnsw_add(h, labels[1], data + 2 * DIM, DIM)); /* replacing needs no slot */
    EXPECT(swann_hnsw_add_batch(h, labels + 1, data, 2, DIM, 1), SWANN_STATUS_INDEX_FULL);
    size_t n = 0;
    OK(swann_hnsw_count(h, &n));
    CHECK(n == 2);
    OK(swann_hnsw_resize(h, 3));
    OK(swann_hnsw_add(h, labels[2], data + 2 * DIM, DIM));
    OK(swann_hnsw_set_grow(h, 1));
    OK(swann_hnsw_add(h, labels[3], data + 3 * DIM, DIM));
    OK(swann_hnsw_count(h, &n));
    CHECK(n == 4);
    EXPECT(swann_hnsw_set_grow(NULL, 1), SWANN_STATUS_NULL_POINTER);

    /* Fewer live labels than k: padded rows. */
    uint64_t out[6];
    float dist[6];
    size_t counts[1];
    OK(swann_hnsw_search_batch(h, data, 1, DIM, 6, -1, 1, out, dist, counts));
    CHECK(counts[0] == 4);
    CHECK(out[4] == UINT64_MAX && out[5] == UINT64_MAX && isinf(dist[5]));
    size_t count = 0;
    OK(swann_hnsw_search(h, data, DIM, 6, -1, out, dist, &count));
    CHECK(count == 4);
    OK(swann_hnsw_free(h));

    /* An empty index gives no results. */
    OK(swann_hnsw_new(&p, &h));
    OK(swann_hnsw_search(h, data, DIM, 3, -1, out, dist, &count));
    CHECK(count == 0);
    OK(swann_hnsw_free(h));
}

static SwannForest *build_forest(const char *metric) {
    SwannForest *f = NULL;
    OK(swann_forest_new(DIM, metric, &f));
    OK(swann_forest_set_seed(f, 42));
    OK(swann_forest_add_item(f, 0, data, DIM));
    uint64_t ids[N - 1];
    for (int i = 1; i < N; i++) ids[i - 1] = (uint64_t)i;
    OK(swann_forest_add_items(f, ids, data + DIM, N - 1, DIM));
    return f;
}

static void test_forest(void) {
    SwannForest *f = (SwannForest *)0x1;
    EXPECT(swann_forest_new(0, "angular", &f), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_new(DIM, "l2", &f), SWANN_STATUS_INVALID_ARGUMENT);
    CHECK(contains_text(swann_last_error_message(), "l2"));
    EXPECT(swann_forest_new(DIM, "bogus", &f), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_new(DIM, NULL, &f), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_new(DIM, "angular", NULL), SWANN_STATUS_NULL_POINTER);
    CHECK(f == (SwannForest *)0x1);

    f = build_forest("euclidean");
    size_t n = 0;
    OK(swann_forest_n_items(f, &n));
    CHECK(n == N);
    OK(swann_forest_n_trees(f, &n));
    CHECK(n == 0);
    OK(swann_forest_dim(f, &n));
    CHECK(n == DIM);
    int built = -1;
    OK(swann_forest_is_built(f, &built));
    CHECK(built == 0);
    const char *name = NULL;
    OK(swann_forest_metric(f, &name));
    CHECK(strcmp(name, "euclidean") == 0);

    /* Add errors. */
    EXPECT(swann_forest_add_item(f, (uint64_t)UINT32_MAX + 1, data, DIM), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_add_item(f, 1, data, DIM + 1), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_add_item(f, 1, NULL, DIM), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_add_item(NULL, 1, data, DIM), SWANN_STATUS_NULL_POINTER);
    uint64_t ids2[2] = {1, (uint64_t)1 << 40};
    EXPECT(swann_forest_add_items(f, ids2, data, 2, DIM), SWANN_STATUS_INVALID_ARGUMENT);
    float nanrow[DIM * 2];
    memcpy(nanrow, data, sizeof nanrow);
    nanrow[DIM + 2] = INFINITY;
    ids2[1] = 2;
    EXPECT(swann_forest_add_items(f, ids2, nanrow, 2, DIM), SWANN_STATUS_INVALID_ARGUMENT);
    CHECK(contains_text(swann_last_error_message(), "row 1"));
    EXPECT(swann_forest_add_items(f, NULL, data, 2, DIM), SWANN_STATUS_NULL_POINTER);

    /* Unbuilt: no searches, no save. */
    uint64_t out[10];
    float dist[10];
    size_t count = 0;
    EXPECT(swann_forest_nns_by_item(f, 3, 10, -1, out, dist, &count), SWANN_STATUS_STATE);
    EXPECT(swann_forest_nns_by_vector(f, data, DIM, 10, -1, out, dist, &count), SWANN_STATUS_STATE);
    char file[256], other[256];
    path_in(file, sizeof file, "forest.swf");
    EXPECT(swann_forest_save(f, file), SWANN_STATUS_STATE);

    /* Build errors, then a build. */
    EXPECT(swann_forest_build(f, 0, -1, NULL), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_build(f, -5, -1, NULL), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_build(f, 10, 0, NULL), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_build(NULL, 10, 1, NULL), SWANN_STATUS_NULL_POINTER);
    OK(swann_forest_set_verbose(f, 0));
    size_t trees = 0;
    OK(swann_forest_build(f, -1, -1, &trees));
    CHECK(trees >= 1);
    OK(swann_forest_n_trees(f, &n));
    CHECK(n == trees);
    OK(swann_forest_is_built(f, &built));
    CHECK(built == 1);
    EXPECT(swann_forest_add_item(f, N, data, DIM), SWANN_STATUS_STATE);
    EXPECT(swann_forest_add_items(f, ids2, data, 2, DIM), SWANN_STATUS_STATE);
    EXPECT(swann_forest_build(f, 5, 1, NULL), SWANN_STATUS_STATE);

    /* Searches. */
    for (int i = 0; i < N; i += 50) {
        OK(swann_forest_nns_by_item(f, (uint64_t)i, 10, -1, out, dist, &count));
        CHECK(count == 10 && out[0] == (uint64_t)i && dist[0] == 0.0f);
        for (int j = 1; j < 10; j++) CHECK(dist[j] >= dist[j - 1]);
        /* Euclidean: the plain (not squared) distance. */
        CHECK(fabsf(dist[1] - sqrtf(l2sq(data + i * DIM, data + out[1] * DIM))) < 1e-4f);
        uint64_t out2[10];
        OK(swann_forest_nns_by_vector(f, data + i * DIM, DIM, 10, -1, out2, NULL, &count));
        CHECK(count == 10 && out2[0] == (uint64_t)i);
    }
    /* A search_k of every item is exact. */
    int agree = 0;
    for (int t = 0; t < 20; t++) {
        float q[DIM];
        for (int j = 0; j < DIM; j++) q[j] = rnd();
        OK(swann_forest_nns_by_vector(f, q, DIM, 1, (int64_t)N * (int64_t)trees, out, NULL, &count));
        agree += out[0] == brute_nearest(q) - 1000;
    }
    CHECK(agree == 20);
    EXPECT(swann_forest_nns_by_item(f, N + 5, 10, -1, out, dist, &count), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_forest_nns_by_item(f, 3, 0, -1, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_nns_by_item(f, 3, 10, -3, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_nns_by_item(f, 3, 10, -1, NULL, dist, &count), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_nns_by_item(f, 3, 10, -1, out, dist, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_nns_by_vector(f, data, DIM - 1, 10, -1, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_nns_by_vector(f, NULL, DIM, 10, -1, out, dist, &count), SWANN_STATUS_NULL_POINTER);

    /* Item vectors and distances. */
    float v[DIM];
    OK(swann_forest_get_item_vector(f, 17, v, DIM));
    CHECK(memcmp(v, data + 17 * DIM, sizeof v) == 0);
    EXPECT(swann_forest_get_item_vector(f, N + 1, v, DIM), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_forest_get_item_vector(f, 17, v, DIM - 1), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_forest_get_item_vector(f, 17, NULL, DIM), SWANN_STATUS_NULL_POINTER);
    float d = -1, d2 = -1;
    OK(swann_forest_get_distance(f, 3, 4, &d));
    OK(swann_forest_get_distance(f, 4, 3, &d2));
    CHECK(d == d2 && fabsf(d - sqrtf(l2sq(data + 3 * DIM, data + 4 * DIM))) < 1e-4f);
    OK(swann_forest_get_distance(f, 5, 5, &d));
    CHECK(d == 0.0f);
    EXPECT(swann_forest_get_distance(f, 5, N + 9, &d), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_forest_get_distance(f, 5, 6, NULL), SWANN_STATUS_NULL_POINTER);

    /* Save, then load, map and reload: the same answers. */
    OK(swann_forest_save(f, file));
    OK(swann_forest_nns_by_item(f, 77, 10, -1, out, dist, &count));
    for (int mode = 0; mode < 3; mode++) {
        SwannForest *g = NULL;
        if (mode == 0)
            OK(swann_forest_load(file, &g));
        else
            OK(swann_forest_open_mmap(file, mode == 2, &g));
        uint64_t out2[10];
        size_t count2;
        OK(swann_forest_nns_by_item(g, 77, 10, -1, out2, NULL, &count2));
        CHECK(count2 == count && memcmp(out, out2, sizeof out) == 0);
        OK(swann_forest_n_trees(g, &n));
        CHECK(n == trees);
        /* A file's forest is read-only: load a copy's items to change it. */
        EXPECT(swann_forest_unbuild(g), SWANN_STATUS_STATE);
        EXPECT(swann_forest_add_item(g, N, data, DIM), SWANN_STATUS_STATE);
        OK(swann_forest_free(g));
    }
    /* A forest built in memory can be unbuilt, extended and rebuilt. */
    OK(swann_forest_unbuild(f));
    OK(swann_forest_is_built(f, &built));
    CHECK(built == 0);
    OK(swann_forest_add_item(f, N, data, DIM));
    OK(swann_forest_build(f, 4, 2, &n));
    CHECK(n == 4);
    OK(swann_forest_n_items(f, &n));
    CHECK(n == N + 1);
    OK(swann_forest_nns_by_item(f, N, 2, -1, out, dist, &count));
    CHECK(count == 2 && dist[0] == 0.0f && dist[1] == 0.0f); /* item N is a copy of item 0 */
    CHECK((out[0] == 0 && out[1] == N) || (out[0] == N && out[1] == 0));
    SwannForest *g = NULL;
    OK(swann_forest_new(DIM, "euclidean", &g));
    OK(swann_forest_reload(g, file, 1, 0));
    OK(swann_forest_nns_by_item(g, 77, 10, -1, out, NULL, &count));
    CHECK(count == 10 && out[0] == 77);
    OK(swann_forest_reload(g, file, 0, 0));
    OK(swann_forest_n_items(g, &n));
    CHECK(n == N);
    OK(swann_forest_unload(g));
    OK(swann_forest_n_items(g, &n));
    CHECK(n == 0);
    OK(swann_forest_n_trees(g, &n));
    CHECK(n == 0);
    OK(swann_forest_dim(g, &n));
    CHECK(n == DIM);
    OK(swann_forest_add_item(g, 0, data, DIM)); /* takes items again */
    OK(swann_forest_free(g));
    OK(swann_forest_new(DIM + 1, "euclidean", &g));
    EXPECT(swann_forest_reload(g, file, 1, 0), SWANN_STATUS_INVALID_ARGUMENT);
    OK(swann_forest_free(g));
    OK(swann_forest_new(DIM, "angular", &g));
    EXPECT(swann_forest_reload(g, file, 0, 0), SWANN_STATUS_INVALID_ARGUMENT);
    OK(swann_forest_free(g));
    g = (SwannForest *)0x1;
    path_in(other, sizeof other, "garbage");
    EXPECT(swann_forest_load(other, &g), SWANN_STATUS_FORMAT);
    path_in(other, sizeof other, "index.hnsw"); /* an HNSW file is not a forest */
    EXPECT(swann_forest_load(other, &g), SWANN_STATUS_FORMAT);
    path_in(other, sizeof other, "missing/forest");
    EXPECT(swann_forest_open_mmap(other, 0, &g), SWANN_STATUS_IO);
    EXPECT(swann_forest_save(f, other), SWANN_STATUS_IO);
    EXPECT(swann_forest_load(NULL, &g), SWANN_STATUS_NULL_POINTER);
    CHECK(g == (SwannForest *)0x1);
    OK(swann_forest_free(f));
    OK(swann_forest_free(NULL));

    /* Every metric: build, search, read back. */
    const char *metrics[] = {"angular", "euclidean", "manhattan", "hamming", "dot"};
    for (int m = 0; m < 5; m++) {
        OK(swann_forest_new(DIM, metrics[m], &f));
        OK(swann_forest_set_verbose(f, 1));
        for (int i = 0; i < 60; i++) {
            float row[DIM];
            for (int j = 0; j < DIM; j++)
                row[j] = m == 3 ? (float)((i >> (j % 6)) & 1) : data[i * DIM + j];
            OK(swann_forest_add_item(f, (uint64_t)i, row, DIM));
        }
        OK(swann_forest_build(f, 3, 1, &trees));
        CHECK(trees == 3);
        OK(swann_forest_nns_by_item(f, 5, 5, -1, out, dist, &count));
        CHECK(count == 5);
        if (m != 4) CHECK(out[0] == 5 && dist[0] == 0.0f); /* dot: larger is nearer */
        OK(swann_forest_metric(f, &name));
        CHECK(strcmp(name, metrics[m]) == 0);
        OK(swann_forest_free(f));
    }

    /* Building on disk: the file is a complete forest after build. */
    path_in(file, sizeof file, "ondisk.swf");
    OK(swann_forest_new(DIM, "angular", &f));
    OK(swann_forest_on_disk_build(f, file));
    for (int i = 0; i < 100; i++) OK(swann_forest_add_item(f, (uint64_t)i, data + i * DIM, DIM));
    OK(swann_forest_build(f, 5, 1, NULL));
    EXPECT(swann_forest_on_disk_build(f, file), SWANN_STATUS_STATE);
    OK(swann_forest_free(f));
    OK(swann_forest_open_mmap(file, 1, &f));
    OK(swann_forest_n_items(f, &n));
    CHECK(n == 100);
    OK(swann_forest_nns_by_item(f, 9, 3, -1, out, NULL, &count));
    CHECK(count == 3 && out[0] == 9);
    OK(swann_forest_free(f));
    OK(swann_forest_new(DIM, "angular", &f));
    path_in(other, sizeof other, "missing/ondisk.swf");
    EXPECT(swann_forest_on_disk_build(f, other), SWANN_STATUS_IO);
    EXPECT(swann_forest_on_disk_build(f, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_set_seed(NULL, 1), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_set_verbose(NULL, 1), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_unload(NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_unbuild(NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_n_items(f, NULL), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_forest_is_built(f, NULL), SWANN_STATUS_NULL_POINTER);
    OK(swann_forest_free(f));
}

static void test_flat(void) {
    SwannFlat *f = (SwannFlat *)0x1;
    EXPECT(swann_flat_new(0, "l2", &f), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_flat_new(DIM, "nope", &f), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_flat_new(DIM, NULL, &f), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_flat_new(DIM, "l2", NULL), SWANN_STATUS_NULL_POINTER);
    CHECK(f == (SwannFlat *)0x1);
    OK(swann_flat_new(DIM, "l2", &f));
    OK(swann_flat_add(f, labels[0], data, DIM));
    OK(swann_flat_add_batch(f, labels + 1, data + DIM, N - 1, DIM));
    EXPECT(swann_flat_add(f, 1, data, DIM - 1), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_flat_add(f, 1, NULL, DIM), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_flat_add_batch(f, labels, NULL, 3, DIM), SWANN_STATUS_NULL_POINTER);
    float nanrow[DIM];
    memcpy(nanrow, data, sizeof nanrow);
    nanrow[0] = NAN;
    EXPECT(swann_flat_add_batch(f, labels, nanrow, 1, DIM), SWANN_STATUS_INVALID_ARGUMENT);
    size_t n = 0;
    OK(swann_flat_count(f, &n));
    CHECK(n == N);
    OK(swann_flat_dim(f, &n));
    CHECK(n == DIM);
    const char *name;
    OK(swann_flat_metric(f, &name));
    CHECK(strcmp(name, "l2") == 0);
    uint64_t out[5];
    float dist[5];
    size_t count;
    for (int t = 0; t < 20; t++) {
        float q[DIM];
        for (int j = 0; j < DIM; j++) q[j] = rnd();
        OK(swann_flat_search(f, q, DIM, 5, out, dist, &count));
        CHECK(count == 5 && out[0] == brute_nearest(q));
        CHECK(fabsf(dist[0] - l2sq(q, data + (out[0] - 1000) * DIM)) < 1e-4f);
    }
    EXPECT(swann_flat_search(f, data, DIM, 0, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_flat_search(f, data, DIM + 1, 5, out, dist, &count), SWANN_STATUS_INVALID_ARGUMENT);
    EXPECT(swann_flat_search(f, data, DIM, 5, NULL, dist, &count), SWANN_STATUS_NULL_POINTER);
    EXPECT(swann_flat_search(NULL, data, DIM, 5, out, dist, &count), SWANN_STATUS_NULL_POINTER);
    float v[DIM];
    OK(swann_flat_get_vector(f, labels[33], v, DIM));
    CHECK(memcmp(v, data + 33 * DIM, sizeof v) == 0);
    EXPECT(swann_flat_get_vector(f, 1, v, DIM), SWANN_STATUS_NOT_FOUND);
    EXPECT(swann_flat_get_vector(f, labels[33], v, 3), SWANN_STATUS_INVALID_ARGUMENT);

    char file[256];
    path_in(file, sizeof file, "flat.swf");
    OK(swann_flat_save(f, file));
    for (int mode = 0; mode < 2; mode++) {
        SwannFlat *g = NULL;
        if (mode == 0)
            OK(swann_flat_load(file, &g));
        else
            OK(swann_flat_open_mmap(file, 1, &g));
        OK(swann_flat_count(g, &n));
        CHECK(n == N);
        OK(swann_flat_search(g, data + 8 * DIM, DIM, 1, out, NULL, &count));
        CHECK(count == 1 && out[0] == labels[8]);
        OK(swann_flat_free(g));
    }
    SwannFlat *g = (SwannFlat *)0x1;
    char other[256];
    path_in(other, sizeof other, "garbage");
    EXPECT(swann_flat_load(other, &g), SWANN_STATUS_FORMAT);
    path_in(other, sizeof other, "missing/flat");
    EXPECT(swann_flat_open_mmap(other, 0, &g), SWANN_STATUS_IO);
    EXPECT(swann_flat_save(f, other), SWANN_STATUS_IO);
    CHECK(g == (SwannFlat *)0x1);
    OK(swann_flat_free(f));
    OK(swann_flat_free(NULL));
}

/* Threads: searches on one HNSW handle and one forest handle from several
 * threads, while another thread adds labels and toggles deletion marks. */
struct shared {
    SwannHnsw *h;
    SwannForest *f;
    int id;
    long failures;
};

static void *searcher(void *arg) {
    struct shared *s = arg;
    uint64_t out[5];
    float dist[5];
    size_t count;
    for (int r = 0; r < 300; r++) {
        int i = (r * 7 + s->id * 13) % N;
        if (i == 9) continue; /* the writer toggles label 9's mark */
        if (swann_hnsw_search(s->h, data + i * DIM, DIM, 5, 64, out, dist, &count) != SWANN_STATUS_OK ||
            count != 5 || out[0] != labels[i] || dist[0] != 0.0f)
            s->failures++;
        if (swann_forest_nns_by_item(s->f, (uint64_t)i, 5, -1, out, NULL, &count) != SWANN_STATUS_OK ||
            count != 5 || out[0] != (uint64_t)i)
            s->failures++;
        if (swann_last_error_message()[0] != '\0') s->failures++;
    }
    /* Error messages are per thread: this one's failure is its own. */
    if (swann_hnsw_search_by_label(s->h, 1, 5, -1, out, dist, &count) != SWANN_STATUS_NOT_FOUND)
        s->failures++;
    char expect[64];
    snprintf(expect, sizeof expect, "label 1 ");
    if (!strstr(swann_last_error_message(), expect)) s->failures++;
    return NULL;
}

static void *writer(void *arg) {
    struct shared *s = arg;
    for (int r = 0; r < 100; r++) {
        float v[DIM];
        /* Far from every stored vector, so searches above keep their answers. */
        for (int j = 0; j < DIM; j++) v[j] = 100.0f + (float)r + (float)j;
        if (swann_hnsw_add(s->h, 100000 + (uint64_t)r, v, DIM) != SWANN_STATUS_OK) s->failures++;
        if (swann_hnsw_mark_deleted(s->h, labels[9]) != SWANN_STATUS_OK) s->failures++;
        if (swann_hnsw_unmark_deleted(s->h, labels[9]) != SWANN_STATUS_OK) s->failures++;
    }
    return NULL;
}

static void test_threads(void) {
    SwannHnsw *h = build_hnsw();
    SwannForest *f = build_forest("euclidean");
    OK(swann_forest_build(f, 10, 2, NULL));
    enum { T = 4 };
    pthread_t th[T + 1];
    struct shared s[T + 1];
    for (int i = 0; i <= T; i++) {
        s[i] = (struct shared){h, f, i, 0};
        CHECK(pthread_create(&th[i], NULL, i == T ? writer : searcher, &s[i]) == 0);
    }
    /* This thread's message is untouched by the others' failures. */
    size_t n;
    OK(swann_hnsw_count(h, &n));
    for (int i = 0; i <= T; i++) {
        CHECK(pthread_join(th[i], NULL) == 0);
        CHECK(s[i].failures == 0);
    }
    CHECK(swann_last_error_message()[0] == '\0');
    OK(swann_hnsw_count(h, &n));
    CHECK(n == N + 100);
    OK(swann_hnsw_deleted_count(h, &n));
    CHECK(n == 0);
    OK(swann_hnsw_free(h));
    OK(swann_forest_free(f));
}

static void cleanup(void) {
    const char *names[] = {"index.hnsw", "garbage", "forest.swf", "ondisk.swf", "flat.swf"};
    char p[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

int main(void) {
    CHECK(mkdtemp(tmpdir) != NULL);
    make_data();
    test_misc();
    test_panic_hook();
    test_hnsw_create_errors();
    test_hnsw();
    test_hnsw_capacity();
    test_forest();
    test_flat();
    test_threads();
    cleanup();
    printf("test_capi: %ld checks passed\n", checks);
    return 0;
}
