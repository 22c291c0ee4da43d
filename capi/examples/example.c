/*
 * A tour of the swann C API: an HNSW index built from a batch, searched one
 * query and several at a time, saved and mapped back; an Annoy-style forest
 * searched by item; and what an error looks like.
 *
 * Build (after `cargo build --release -p swann-capi`):
 *   cc -std=c11 -I capi/include capi/examples/example.c \
 *      target/release/libswann_capi.a -lm -ldl -lpthread -o example
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "swann.h"

/* Prints the failed call and the library's message, then exits. */
#define TRY(call)                                                                      \
    do {                                                                               \
        SwannStatus st_ = (call);                                                      \
        if (st_ != SWANN_STATUS_OK) {                                                  \
            fprintf(stderr, "%s failed: %s: %s\n", #call, swann_status_name(st_),     \
                    swann_last_error_message());                                       \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

enum { DIM = 16, N = 2000, K = 5 };

int main(void) {
    printf("swann %s\n", swann_version());

    /* Some data: N points on a few noisy lines. */
    float *data = malloc(sizeof(float) * N * DIM);
    uint64_t *labels = malloc(sizeof(uint64_t) * N);
    if (!data || !labels) return 1;
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        labels[i] = (uint64_t)i;
        for (int j = 0; j < DIM; j++) {
            seed = seed * 1103515245u + 12345u;
            float noise = (float)((seed >> 16) & 0x7fff) / 32768.0f - 0.5f;
            data[i * DIM + j] = (float)(i % 10) * (float)(j + 1) * 0.1f + noise;
        }
    }

    /* HNSW: parameters start from the defaults. */
    SwannHnswParams params;
    TRY(swann_hnsw_params_init(&params));
    params.dim = DIM;
    params.metric = "l2";
    params.m = 12;
    params.ef_construction = 100;
    params.capacity = N;
    SwannHnsw *index = NULL;
    TRY(swann_hnsw_new(&params, &index));
    TRY(swann_hnsw_add_batch(index, labels, data, N, DIM, -1));

    uint64_t found[K];
    float dist[K];
    size_t count = 0;
    TRY(swann_hnsw_search(index, data + 42 * DIM, DIM, K, 64, found, dist, &count));
    printf("hnsw: %zu nearest to row 42:", count);
    for (size_t i = 0; i < count; i++) printf(" %llu (%.3f)", (unsigned long long)found[i], dist[i]);
    printf("\n");

    /* Three queries at once on every core; rows of K results each. */
    uint64_t batch[3 * K];
    size_t counts[3];
    TRY(swann_hnsw_search_batch(index, data, 3, DIM, K, -1, -1, batch, NULL, counts));
    for (int q = 0; q < 3; q++)
        printf("hnsw: query %d -> first %llu of %zu\n", q, (unsigned long long)batch[q * K], counts[q]);

    char config[512];
    TRY(swann_hnsw_config(index, config, sizeof config, NULL));
    printf("hnsw config:\n%s", config);

    /* Save, then map the file and search it in place. */
    const char *path = "example_index.swann";
    TRY(swann_hnsw_save(index, path));
    TRY(swann_hnsw_free(index));
    SwannHnsw *mapped = NULL;
    TRY(swann_hnsw_open_mmap(path, 0, &mapped));
    TRY(swann_hnsw_search_by_label(mapped, 42, K, -1, found, NULL, &count));
    printf("hnsw (mapped): label 42's neighbours start with %llu\n", (unsigned long long)found[0]);
    TRY(swann_hnsw_free(mapped));
    remove(path);

    /* A forest, as in Annoy: add items, build, query. */
    SwannForest *forest = NULL;
    TRY(swann_forest_new(DIM, "angular", &forest));
    TRY(swann_forest_set_seed(forest, 123));
    for (int i = 0; i < N; i++) TRY(swann_forest_add_item(forest, (uint64_t)i, data + i * DIM, DIM));
    size_t trees = 0;
    TRY(swann_forest_build(forest, 10, -1, &trees));
    TRY(swann_forest_nns_by_item(forest, 7, K, -1, found, dist, &count));
    printf("forest: %zu trees; item 7's neighbours:", trees);
    for (size_t i = 0; i < count; i++) printf(" %llu (%.3f)", (unsigned long long)found[i], dist[i]);
    printf("\n");

    /* Errors come back as a status and a message; nothing is written. */
    SwannStatus st = swann_forest_add_item(forest, 1, data, DIM);
    printf("adding to a built forest: %s: %s\n", swann_status_name(st), swann_last_error_message());
    TRY(swann_forest_free(forest));

    free(data);
    free(labels);
    return 0;
}
