/*
 * annoy: Annoy's Lua API (annoy.AnnoyIndex) over swann's C ABI.
 *
 * One source for Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT: it uses the Lua 5.1 C
 * API plus the few shims below. Each build links swann's static library
 * (libswann_capi.a), so the module needs no installed shared library.
 *
 * Item ids are 0-based, as in Annoy. Searches return Lua tables (1-based
 * arrays of ids; with include_distances a second table of distances).
 *
 * Errors: bad arguments raise the usual "bad argument" errors; every
 * failed swann call raises "<method>: <swann message> (<status name>)",
 * so no status goes unchecked and a panic inside the library (reported by
 * the C ABI as SWANN_STATUS_PANIC) becomes a Lua error like any other.
 *
 * Scratch buffers (vectors, search results) are Lua userdata, so an error
 * raised half-way (a longjmp out of this code) leaks nothing.
 */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "swann.h"

#if LUA_VERSION_NUM == 501
#define compat_setfuncs(L, funcs) luaL_register(L, NULL, funcs)
#define compat_rawlen(L, i) lua_objlen(L, i)
#else
#define compat_setfuncs(L, funcs) luaL_setfuncs(L, funcs, 0)
#define compat_rawlen(L, i) lua_rawlen(L, i)
#endif

#define ANNOY_MT "annoy.AnnoyIndex"

/* The largest item id the forest takes (ids are uint32 in the file). */
#define ANNOY_MAX_ID 4294967295.0

typedef struct {
    SwannForest *h; /* NULL once freed (by __gc or __close) */
    size_t f;       /* dimension (bits, for hamming) */
    char metric[16];
} Index;

/* ---------------------------------------------------------------- errors */

/* Raises the swann error of a failed call: "<what>: <message> (<status>)". */
static int swann_fail(lua_State *L, SwannStatus st, const char *what) {
    return luaL_error(L, "%s: %s (%s)", what, swann_last_error_message(),
                      swann_status_name((int32_t)st));
}

#define CHECK(L, call, what)                                                   \
    do {                                                                       \
        SwannStatus st_ = (call);                                              \
        if (st_ != SWANN_STATUS_OK) {                                          \
            swann_fail((L), st_, (what));                                      \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------- arguments */

static Index *check_index(lua_State *L) {
    Index *x = (Index *)luaL_checkudata(L, 1, ANNOY_MT);
    if (x->h == NULL) {
        luaL_error(L, "annoy.AnnoyIndex: the index has been closed");
    }
    return x;
}

/*
 * An integral Lua number at argument `arg`, in [lo, hi]. Floats with a
 * fractional part are rejected on every Lua version (5.1 would truncate
 * them silently).
 */
static double check_integral(lua_State *L, int arg, double lo, double hi,
                             const char *what) {
    double d;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, arg)) {
        lua_Integer i = lua_tointeger(L, arg);
        d = (double)i;
    } else
#endif
    {
        d = (double)luaL_checknumber(L, arg);
        if (d != floor(d)) {
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must be an integer", what));
        }
    }
    if (d < lo) {
        luaL_argerror(L, arg,
                      lua_pushfstring(L, "%s must be >= %d", what, (int)lo));
    }
    if (d > hi) {
        luaL_argerror(L, arg, lua_pushfstring(L, "%s is too large", what));
    }
    return d;
}

static size_t n_items(lua_State *L, Index *x, const char *what) {
    size_t n = 0;
    CHECK(L, swann_forest_n_items(x->h, &n), what);
    return n;
}

/*
 * An item id at `arg` (Annoy's checks: "Index must be >= 0", and, when
 * `bounded`, "Index must be < size").
 */
static uint64_t check_item(lua_State *L, Index *x, int arg, int bounded,
                           const char *what) {
    double d = check_integral(L, arg, -INFINITY, ANNOY_MAX_ID, "Index");
    luaL_argcheck(L, d >= 0, arg, "Index must be >= 0");
    if (bounded) {
        luaL_argcheck(L, d < (double)n_items(L, x, what), arg,
                      "Index must be < size");
    }
    return (uint64_t)d;
}

/* A scratch array of `n` elements of `size` bytes, owned by Lua's GC. */
static void *scratch(lua_State *L, size_t n, size_t size) {
    return lua_newuserdata(L, (n ? n : 1) * size);
}

/*
 * The table at `arg` as `f` floats (Annoy's "Length of v != f" check);
 * every element must be a number.
 */
static float *check_vector(lua_State *L, int arg, size_t f) {
    size_t i, len;
    float *v;
    luaL_checktype(L, arg, LUA_TTABLE);
    len = compat_rawlen(L, arg);
    luaL_argcheck(L, len == f, arg, "Length of v != f");
    v = (float *)scratch(L, f, sizeof(float));
    for (i = 0; i < f; i++) {
        lua_rawgeti(L, arg, (int)(i + 1));
        if (lua_type(L, -1) != LUA_TNUMBER) {
            luaL_argerror(L, arg,
                          lua_pushfstring(L, "v[%d] is %s, not a number",
                                          (int)(i + 1), luaL_typename(L, -1)));
        }
        v[i] = (float)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    return v;
}

static void push_floats(lua_State *L, const float *v, size_t n) {
    size_t i;
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_pushnumber(L, (lua_Number)v[i]);
        lua_rawseti(L, -2, (int)(i + 1));
    }
}

static void push_ids(lua_State *L, const uint64_t *v, size_t n) {
    size_t i;
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)v[i]);
        lua_rawseti(L, -2, (int)(i + 1));
    }
}

/* -------------------------------------------------------------- methods */

static int l_add_item(lua_State *L) {
    Index *x = check_index(L);
    uint64_t id = check_item(L, x, 2, 0, "add_item");
    float *v = check_vector(L, 3, x->f);
    CHECK(L, swann_forest_add_item(x->h, id, v, x->f), "add_item");
    return 0;
}

static int l_build(lua_State *L) {
    Index *x = check_index(L);
    double n_trees = check_integral(L, 2, -1, 1e9, "n_trees");
    double n_jobs = -1;
    size_t built = 0;
    if (!lua_isnoneornil(L, 3)) {
        n_jobs = check_integral(L, 3, -1, 65536, "n_jobs");
        luaL_argcheck(L, n_jobs != 0, 3, "n_jobs must be -1 or >= 1");
    }
    CHECK(L, swann_forest_build(x->h, (int64_t)n_trees, (int32_t)n_jobs, &built),
          "build");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_on_disk_build(lua_State *L) {
    Index *x = check_index(L);
    const char *fn = luaL_checkstring(L, 2);
    CHECK(L, swann_forest_on_disk_build(x->h, fn), "on_disk_build");
    lua_pushboolean(L, 1);
    return 1;
}

/* Annoy's prefault argument: true unless given and false (Lua's default). */
static int opt_prefault(lua_State *L, int arg) {
    return lua_isnoneornil(L, arg) ? 1 : lua_toboolean(L, arg);
}

/*
 * Annoy's save: write the file, then serve the index from it (mapped), so
 * the index is read-only afterwards, as in Annoy.
 */
static int l_save(lua_State *L) {
    Index *x = check_index(L);
    const char *fn = luaL_checkstring(L, 2);
    int prefault = opt_prefault(L, 3);
    CHECK(L, swann_forest_save(x->h, fn), "save");
    CHECK(L, swann_forest_reload(x->h, fn, 1, prefault), "save");
    lua_pushboolean(L, 1);
    return 1;
}

static int l_load(lua_State *L) {
    Index *x = check_index(L);
    const char *fn = luaL_checkstring(L, 2);
    int prefault = opt_prefault(L, 3);
    SwannStatus st = swann_forest_reload(x->h, fn, 1, prefault);
    if (st != SWANN_STATUS_OK) {
        return luaL_error(L, "Can't load file: %s: %s (%s)", fn,
                          swann_last_error_message(),
                          swann_status_name((int32_t)st));
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_unload(lua_State *L) {
    Index *x = check_index(L);
    CHECK(L, swann_forest_unload(x->h), "unload");
    lua_pushboolean(L, 1);
    return 1;
}

/*
 * The common tail of both searches: arguments 3 (n), 4 (search_k, default
 * -1) and 5 (include_distances), the stack set to 5 slots before any
 * scratch buffer is pushed; `vector` NULL means by item `id`.
 */
static int search(lua_State *L, Index *x, uint64_t id, const float *vector,
                  const char *what) {
    double n = check_integral(L, 3, 0, 9007199254740992.0, "n");
    double search_k = -1;
    int include_distances = lua_toboolean(L, 5);
    size_t cap, count = 0, have;
    uint64_t *ids;
    float *dists = NULL;
    SwannStatus st;
    if (!lua_isnoneornil(L, 4)) {
        search_k = check_integral(L, 4, -1, 9007199254740992.0, "search_k");
    }
    /* No search returns more ids than the index holds: size the buffers by
     * that, not by n (Annoy's tests ask for 999999999). */
    have = n_items(L, x, what);
    cap = (double)have < n ? have : (size_t)n;
    if (cap == 0) {
        /* swann rejects n == 0; ask for one and return none, so errors
         * (unbuilt index, bad vector) are still raised. */
        cap = 1;
    }
    ids = (uint64_t *)scratch(L, cap, sizeof(uint64_t));
    if (include_distances) {
        dists = (float *)scratch(L, cap, sizeof(float));
    }
    if (vector != NULL) {
        st = swann_forest_nns_by_vector(x->h, vector, x->f, cap,
                                        (int64_t)search_k, ids, dists, &count);
    } else {
        st = swann_forest_nns_by_item(x->h, id, cap, (int64_t)search_k, ids,
                                      dists, &count);
    }
    if (st != SWANN_STATUS_OK) {
        return swann_fail(L, st, what);
    }
    if ((double)count > n) {
        count = (size_t)n;
    }
    push_ids(L, ids, count);
    if (include_distances) {
        push_floats(L, dists, count);
        return 2;
    }
    return 1;
}

static int l_get_nns_by_item(lua_State *L) {
    Index *x;
    lua_settop(L, 5); /* fixed slots for the optional arguments */
    x = check_index(L);
    uint64_t id = check_item(L, x, 2, 1, "get_nns_by_item");
    return search(L, x, id, NULL, "get_nns_by_item");
}

static int l_get_nns_by_vector(lua_State *L) {
    Index *x;
    float *v;
    lua_settop(L, 5); /* fixed slots: scratch buffers go above them */
    x = check_index(L);
    v = check_vector(L, 2, x->f);
    return search(L, x, 0, v, "get_nns_by_vector");
}

static int l_get_item_vector(lua_State *L) {
    Index *x = check_index(L);
    uint64_t id = check_item(L, x, 2, 1, "get_item_vector");
    float *v = (float *)scratch(L, x->f, sizeof(float));
    CHECK(L, swann_forest_get_item_vector(x->h, id, v, x->f), "get_item_vector");
    push_floats(L, v, x->f);
    return 1;
}

static int l_get_distance(lua_State *L) {
    Index *x = check_index(L);
    uint64_t i = check_item(L, x, 2, 1, "get_distance");
    uint64_t j = check_item(L, x, 3, 1, "get_distance");
    float d = 0;
    CHECK(L, swann_forest_get_distance(x->h, i, j, &d), "get_distance");
    lua_pushnumber(L, (lua_Number)d);
    return 1;
}

static int l_get_n_items(lua_State *L) {
    Index *x = check_index(L);
    lua_pushinteger(L, (lua_Integer)n_items(L, x, "get_n_items"));
    return 1;
}

static int l_get_n_trees(lua_State *L) {
    Index *x = check_index(L);
    size_t n = 0;
    CHECK(L, swann_forest_n_trees(x->h, &n), "get_n_trees");
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int l_set_seed(lua_State *L) {
    Index *x = check_index(L);
    uint64_t seed;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, 2)) {
        lua_Integer i = lua_tointeger(L, 2);
        luaL_argcheck(L, i >= 0, 2, "seed must be >= 0");
        seed = (uint64_t)i;
    } else
#endif
    {
        seed = (uint64_t)check_integral(L, 2, 0, 18446744073709549568.0, "seed");
    }
    CHECK(L, swann_forest_set_seed(x->h, seed), "set_seed");
    return 0;
}

static int l_verbose(lua_State *L) {
    Index *x = check_index(L);
    int v;
    luaL_checkany(L, 2);
    v = lua_toboolean(L, 2);
    CHECK(L, swann_forest_set_verbose(x->h, v), "verbose");
    lua_pushboolean(L, 1);
    return 1;
}

/* ------------------------------------------------------ life and naming */

/* __gc, and __close on Lua 5.4: frees the forest; later calls error. */
static int l_free(lua_State *L) {
    Index *x = (Index *)luaL_checkudata(L, 1, ANNOY_MT);
    if (x->h != NULL) {
        SwannForest *h = x->h;
        x->h = NULL;
        /* swann_forest_free fails only on a NULL handle; nothing to raise
         * from a finalizer. */
        (void)swann_forest_free(h);
    }
    return 0;
}

static int l_tostring(lua_State *L) {
    Index *x = (Index *)luaL_checkudata(L, 1, ANNOY_MT);
    size_t n = 0;
    if (x->h == NULL) {
        lua_pushliteral(L, "annoy.AnnoyIndex object (closed)");
        return 1;
    }
    CHECK(L, swann_forest_n_items(x->h, &n), "tostring");
    lua_pushfstring(L, "annoy.AnnoyIndex object (%dx%d, %s distance)", (int)n,
                    (int)x->f, x->metric);
    return 1;
}

static const luaL_Reg index_meta[] = {
    {"__gc", l_free},
#if LUA_VERSION_NUM >= 504
    {"__close", l_free},
#endif
    {"__tostring", l_tostring},
    {NULL, NULL},
};

static const luaL_Reg index_methods[] = {
    {"add_item", l_add_item},
    {"build", l_build},
    {"save", l_save},
    {"load", l_load},
    {"unload", l_unload},
    {"get_nns_by_item", l_get_nns_by_item},
    {"get_nns_by_vector", l_get_nns_by_vector},
    {"get_item_vector", l_get_item_vector},
    {"get_distance", l_get_distance},
    {"get_n_items", l_get_n_items},
    {"get_n_trees", l_get_n_trees},
    {"on_disk_build", l_on_disk_build},
    {"set_seed", l_set_seed},
    {"verbose", l_verbose},
    {NULL, NULL},
};

static const char *const metrics[] = {"angular", "euclidean", "manhattan",
                                      "hamming", "dot", NULL};

/* annoy.AnnoyIndex(f[, metric]) */
static int l_new(lua_State *L) {
    double f = check_integral(L, 1, 1, 1e9, "f");
    const char *metric = luaL_optstring(L, 2, "angular");
    Index *x;
    SwannStatus st;
    int i;
    for (i = 0; metrics[i] != NULL; i++) {
        if (strcmp(metric, metrics[i]) == 0) {
            break;
        }
    }
    if (metrics[i] == NULL) {
        return luaL_error(L, "Unknown metric: %s", metric);
    }
    x = (Index *)lua_newuserdata(L, sizeof(Index));
    x->h = NULL;
    x->f = (size_t)f;
    strcpy(x->metric, metrics[i]);
    luaL_getmetatable(L, ANNOY_MT);
    lua_setmetatable(L, -2);
    st = swann_forest_new(x->f, metrics[i], &x->h);
    if (st != SWANN_STATUS_OK) {
        x->h = NULL;
        return swann_fail(L, st, "AnnoyIndex");
    }
    return 1;
}

/*
 * annoy._debug_panic_next_call([enable]): arms (or, given false, disarms)
 * the C ABI's test hook, so that the next swann call on this thread panics
 * inside the library. For tests of the panic path only.
 */
static int l_debug_panic_next_call(lua_State *L) {
    int enable = lua_isnoneornil(L, 1) ? 1 : lua_toboolean(L, 1);
    swann_debug_panic_next_call(enable);
    return 0;
}

static int l_swann_version(lua_State *L) {
    lua_pushstring(L, swann_version());
    return 1;
}

static const luaL_Reg module_funcs[] = {
    {"AnnoyIndex", l_new},
    {"swann_version", l_swann_version},
    {"_debug_panic_next_call", l_debug_panic_next_call},
    {NULL, NULL},
};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_annoy(lua_State *L);

int luaopen_annoy(lua_State *L) {
    if (luaL_newmetatable(L, ANNOY_MT)) {
        compat_setfuncs(L, index_meta);
        lua_newtable(L);
        compat_setfuncs(L, index_methods);
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, ANNOY_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    compat_setfuncs(L, module_funcs);
    return 1;
}
