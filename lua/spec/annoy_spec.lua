-- busted tests of the annoy Lua module (lua/annoy.c over swann's C ABI).
--
-- The first part ports every case of Annoy's test/annoy_test.lua; cases
-- that read Annoy's test/test.tree read it (tests/data/annoy/old_split_first.tree)
-- or, where they write it back, a forest file written by this module.
-- The rest covers the metrics Annoy's Lua test leaves out, the methods it
-- added later (get_n_trees, set_seed, verbose), error paths, the handle's
-- life cycle, C ABI panics, and forest files written by swann's CLI.
--
-- Run from lua/ with any runtime: `lua5.4 /usr/bin/busted`,
-- `luajit /usr/bin/busted`, ... The module is taken from
-- lua/build/<version>/annoy.so (lua/build.sh builds it).

local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or "."
local lua_dir = here .. "/.."
local root = lua_dir .. "/.."
local runtime = (type(jit) == "table") and "luajit" or _VERSION:match("%d+%.%d+")
package.cpath = lua_dir .. "/build/" .. runtime .. "/?.so;" .. package.cpath

local annoy = require "annoy"
local AnnoyIndex = annoy.AnnoyIndex

math.randomseed(12345)

-- Files the tests write go under one temporary prefix, removed at the end.
local tmp_base = os.tmpname()
local tmp_files = { tmp_base }
local function tmpfile(name)
    local p = tmp_base .. "-" .. name
    tmp_files[#tmp_files + 1] = p
    return p
end

teardown(function()
    for _, p in ipairs(tmp_files) do
        os.remove(p)
    end
end)

---------------------------------------------------------------- helpers

-- Normal deviates by Box-Muller (Annoy's test sums 12 uniforms; this is
-- the same distribution at a sixth of the cost, which matters on Lua 5.x).
local spare
local function gauss(mu, sigma)
    local z
    if spare then
        z, spare = spare, nil
    else
        local r = (-2 * math.log(1 - math.random())) ^ 0.5
        local a = 2 * math.pi * math.random()
        z, spare = r * math.cos(a), r * math.sin(a)
    end
    return mu + z * sigma
end

local function randomVector(f, mu, sigma)
    mu = mu or 0
    sigma = sigma or 1
    local v = {}
    for i = 1, f do
        v[i] = gauss(mu, sigma)
    end
    return v
end

local function round(x)
    return ("%.3f"):format(x)
end

local function roundArray(array)
    local rounded_array = {}
    for k, v in ipairs(array) do
        rounded_array[k] = round(v)
    end
    return rounded_array
end

local function isSorted(v)
    for i = 2, #v do
        if v[i - 1] > v[i] then
            return false
        end
    end
    return true
end

local function max(array)
    local ans = assert(array[1])
    for _, v in ipairs(array) do
        ans = math.max(ans, v)
    end
    return ans
end

local function min(array)
    local ans = assert(array[1])
    for _, v in ipairs(array) do
        ans = math.min(ans, v)
    end
    return ans
end

-- Asserts that fn raises an error whose text contains `needle` (plain).
local function errors_with(needle, fn)
    local ok, err = pcall(fn)
    assert.is_false(ok, "expected an error containing: " .. needle)
    err = tostring(err)
    assert.truthy(err:find(needle, 1, true), ("error %q lacks %q"):format(err, needle))
    return err
end

local function precision(first1000, n, n_trees, n_points, n_rounds)
    n_trees = n_trees or 10
    n_points = n_points or 10000
    n_rounds = n_rounds or 10
    local found = 0
    for _ = 1, n_rounds do
        local f = 10
        local p_size
        if first1000 then
            -- create random points at distance x from (1000, 0, 0, ...)
            p_size = f - 1
        else
            -- create random points at distance x
            p_size = f
        end
        local i = AnnoyIndex(f, 'euclidean')
        for j = 0, n_points - 1 do
            local p = randomVector(p_size, 0, 1)
            local norm = 0
            for _, pi in ipairs(p) do
                norm = norm + pi ^ 2
            end
            norm = norm ^ 0.5
            local x = {}
            if first1000 then
                x[1] = 1000
            end
            for _, pi in ipairs(p) do
                table.insert(x, pi / norm * j)
            end
            i:add_item(j, x)
        end
        i:build(n_trees)
        local v = {}
        for k = 1, f do
            v[k] = 0
        end
        if first1000 then
            v[1] = 1000
        end
        local nns = i:get_nns_by_vector(v, n)
        assert.equal(n, #nns)
        assert.truthy(isSorted(nns))
        for _, x in ipairs(nns) do
            if x < n then
                found = found + 1
            end
        end
    end
    return 1.0 * found / (n * n_rounds)
end

-- A 10-dimensional angular forest of 100 items saved by this module: the
-- stand-in for Annoy's test/test.tree. Returns its path and its vectors.
local fixture_path, fixture_vectors
local function fixture()
    if not fixture_path then
        fixture_path = tmpfile("fixture.tree")
        fixture_vectors = {}
        local t = AnnoyIndex(10)
        for j = 0, 99 do
            fixture_vectors[j] = randomVector(10)
            t:add_item(j, fixture_vectors[j])
        end
        t:set_seed(1)
        t:build(10)
        t:save(fixture_path)
    end
    return fixture_path, fixture_vectors
end

-- Little-endian int32 and float32 for .fvecs files (string.pack where the
-- runtime has it, arithmetic on 5.1, 5.2 and LuaJIT).
local function le_bytes(u, n)
    local b = {}
    for k = 1, n do
        b[k] = string.char(u % 256)
        u = math.floor(u / 256)
    end
    return table.concat(b)
end

local function int32(n)
    if string.pack then
        return string.pack("<i4", n)
    end
    return le_bytes(n % 4294967296, 4)
end

local function float32(x)
    if string.pack then
        return string.pack("<f", x)
    end
    if x == 0 then
        return "\0\0\0\0"
    end
    local sign = 0
    if x < 0 then
        sign, x = 1, -x
    end
    local m, e = math.frexp(x) -- x = m * 2^e, 0.5 <= m < 1
    local mant = math.floor((m * 2 - 1) * 2 ^ 23 + 0.5)
    e = e - 1
    if mant == 2 ^ 23 then
        mant, e = 0, e + 1
    end
    assert(e > -127 and e < 128, "float32: out of the normal range")
    return le_bytes(sign * 2 ^ 31 + (e + 127) * 2 ^ 23 + mant, 4)
end

local function write_fvecs(path, rows)
    local fh = assert(io.open(path, "wb"))
    for _, row in ipairs(rows) do
        fh:write(int32(#row))
        for _, x in ipairs(row) do
            fh:write(float32(x))
        end
    end
    fh:close()
end

-- os.execute's result as a boolean on every Lua version.
local function run(cmd)
    local a, _, c = os.execute(cmd)
    if type(a) == "number" then
        return a == 0
    end
    return a == true and (c == nil or c == 0)
end

local function first_n(t, n)
    local r = {}
    for k = 1, n do
        r[k] = t[k]
    end
    return r
end

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- The swann command: $SWANN_CLI, else `cargo run` in the repository.
local function swann_cli()
    local cli = os.getenv("SWANN_CLI")
    if cli and cli ~= "" then
        return shell_quote(cli)
    end
    return "cargo run --quiet --release -p swann-cli --"
end

-------------------------------------------- Annoy's test/annoy_test.lua

describe("angular annoy test", function()

    it("get_nns_by_vector", function()
        local f = 3
        local i = AnnoyIndex(f)
        i:add_item(0, {0, 0, 1})
        i:add_item(1, {0, 1, 0})
        i:add_item(2, {1, 0, 0})
        i:build(10)
        assert.same({2, 1, 0}, i:get_nns_by_vector({3, 2, 1}, 3))
        assert.same({0, 1, 2}, i:get_nns_by_vector({1, 2, 3}, 3))
        assert.same({2, 0, 1}, i:get_nns_by_vector({2, 0, 1}, 3))
    end)

    it("get_nns_by_item", function()
        local f = 3
        local i = AnnoyIndex(f)
        i:add_item(0, {2, 1, 0})
        i:add_item(1, {1, 2, 0})
        i:add_item(2, {0, 0, 1})
        i:build(10)
        assert.same({0, 1, 2}, i:get_nns_by_item(0, 3))
        assert.same({1, 0, 2}, i:get_nns_by_item(1, 3))
        local close_to_2 = i:get_nns_by_item(2, 3)
        assert.equal(close_to_2[1], 2)
        assert.truthy(
            (close_to_2[2] == 0 and close_to_2[3] == 1)
            or
            (close_to_2[2] == 1 and close_to_2[3] == 0)
        )
    end)

    it("dist", function()
        local i = AnnoyIndex(2)
        i:add_item(0, {0, 1})
        i:add_item(1, {1, 1})
        assert.equal(round((2 * (1.0 - 2 ^ -0.5)) ^ 0.5), round(i:get_distance(0, 1)))
    end)

    it("dist_2", function()
        local i = AnnoyIndex(2)
        i:add_item(0, {1000, 0})
        i:add_item(1, {10, 0})
        assert.equal(round(0), round(i:get_distance(0, 1)))
    end)

    it("dist_3", function()
        local i = AnnoyIndex(2)
        i:add_item(0, {97, 0})
        i:add_item(1, {42, 42})
        local dist = ((1 - 2 ^ -0.5) ^ 2 + (2 ^ -0.5) ^ 2) ^ 0.5
        assert.equal(round(dist), round(i:get_distance(0, 1)))
    end)

    it("dist_degen", function()
        local i = AnnoyIndex(2)
        i:add_item(0, {1, 0})
        i:add_item(1, {0, 0})
        assert.equal(round(2.0 ^ 0.5), round(i:get_distance(0, 1)))
    end)

    it("large_index", function()
        -- Generate pairs of random points where the pair is super close
        local f = 10
        local i = AnnoyIndex(f)
        for j = 0, 10000 - 1, 2 do
            local p = randomVector(f, 0, 1)
            local f1 = math.random() + 1
            local f2 = math.random() + 1
            local x, y = {}, {}
            for k, pi in ipairs(p) do
                x[k] = f1 * pi + gauss(0, 1e-2)
                y[k] = f2 * pi + gauss(0, 1e-2)
            end
            i:add_item(j, x)
            i:add_item(j + 1, y)
        end
        i:build(10)
        for j = 0, 10000 - 1, 2 do
            assert.same({j, j + 1}, i:get_nns_by_item(j, 2))
            assert.same({j + 1, j}, i:get_nns_by_item(j + 1, 2))
        end
    end)

    it("precision_1", function()
        assert.truthy(precision(true, 1) >= 0.98)
    end)

    it("precision_10", function()
        assert.truthy(precision(true, 10) >= 0.98)
    end)

    it("precision_100", function()
        assert.truthy(precision(true, 100) >= 0.98)
    end)

    it("precision_1000", function()
        assert.truthy(precision(true, 1000) >= 0.98)
    end)

    it("load_save_get_item_vector", function()
        local f = 3
        local i = AnnoyIndex(f)
        i:add_item(0, {1.1, 2.2, 3.3})
        i:add_item(1, {4.4, 5.5, 6.6})
        i:add_item(2, {7.7, 8.8, 9.9})
        assert.same(roundArray({1.1, 2.2, 3.3}), roundArray(i:get_item_vector(0)))
        assert.truthy(i:build(10))
        local path = tmpfile("blah.ann")
        assert.truthy(i:save(path))
        assert.same(roundArray({4.4, 5.5, 6.6}), roundArray(i:get_item_vector(1)))
        local j = AnnoyIndex(f)
        assert.truthy(j:load(path))
        assert.same(roundArray({7.7, 8.8, 9.9}), roundArray(i:get_item_vector(2)))
        -- (Annoy's test reads i again; the loaded copy must agree too.)
        assert.same(roundArray({7.7, 8.8, 9.9}), roundArray(j:get_item_vector(2)))
    end)

    it("get_nns_search_k", function()
        local i = AnnoyIndex(3)
        i:add_item(0, {0, 0, 1})
        i:add_item(1, {0, 1, 0})
        i:add_item(2, {1, 0, 0})
        i:build(10)
        assert.same({0, 1, 2}, i:get_nns_by_item(0, 3, 10))
        assert.same({2, 1, 0}, i:get_nns_by_vector({3, 2, 1}, 3, 10))
    end)

    it("include_dists", function()
        -- Double checking issue 112
        local f = 40
        local i = AnnoyIndex(f)
        local v = randomVector(f, 0, 1)
        i:add_item(0, v)
        local neg_v = {}
        for k, value in ipairs(v) do
            neg_v[k] = -value
        end
        i:add_item(1, neg_v)
        i:build(10)
        local indices, dists = i:get_nns_by_item(0, 2, 10, true)
        assert.same({0, 1}, indices)
        assert.same(roundArray({0.0, 2.0}), roundArray(dists))
    end)

    it("include_dists_check_ranges", function()
        local f = 3
        local i = AnnoyIndex(f)
        for j = 0, 100000 - 1 do
            i:add_item(j, randomVector(f, 0, 1))
        end
        i:build(10)
        local include_distances = true
        local ids, dists = i:get_nns_by_item(0, 100000, -1, include_distances)
        assert.equal(#ids, #dists)
        assert.truthy(max(dists) < 2.0)
        assert.equal(round(0.0), round(min(dists)))
    end)

end)

describe("euclidean annoy test", function()

    it("get_nns_by_vector", function()
        local i = AnnoyIndex(2, 'euclidean')
        i:add_item(0, {2, 2})
        i:add_item(1, {3, 2})
        i:add_item(2, {3, 3})
        i:build(10)
        assert.same({2, 1, 0}, i:get_nns_by_vector({4, 4}, 3))
        assert.same({0, 1, 2}, i:get_nns_by_vector({1, 1}, 3))
        assert.same({1, 2, 0}, i:get_nns_by_vector({4, 2}, 3))
    end)

    it("get_nns_by_item", function()
        local i = AnnoyIndex(2, 'euclidean')
        i:add_item(0, {2, 2})
        i:add_item(1, {3, 2})
        i:add_item(2, {3, 3})
        i:build(10)
        assert.same({0, 1, 2}, i:get_nns_by_item(0, 3))
        assert.same({2, 1, 0}, i:get_nns_by_item(2, 3))
    end)

    it("dist", function()
        local i = AnnoyIndex(2, 'euclidean')
        i:add_item(0, {0, 1})
        i:add_item(1, {1, 1})
        assert.equal(round(1.0), round(i:get_distance(0, 1)))
    end)

    it("large_index", function()
        -- Generate pairs of random points where the pair is super close
        local f = 10
        local i = AnnoyIndex(f, 'euclidean')
        for j = 0, 10000 - 1, 2 do
            local p = randomVector(f, 0, 1)
            local x, y = {}, {}
            for k, pi in ipairs(p) do
                x[k] = 1 + pi + gauss(0, 1e-2)
                y[k] = 1 + pi + gauss(0, 1e-2)
            end
            i:add_item(j, x)
            i:add_item(j + 1, y)
        end
        i:build(10)
        for j = 0, 10000 - 1, 2 do
            assert.same({j, j + 1}, i:get_nns_by_item(j, 2))
            assert.same({j + 1, j}, i:get_nns_by_item(j + 1, 2))
        end
    end)

    it("precision_1", function()
        assert.truthy(precision(false, 1) >= 0.98)
    end)

    it("precision_10", function()
        assert.truthy(precision(false, 10) >= 0.98)
    end)

    it("precision_100", function()
        assert.truthy(precision(false, 100) >= 0.98)
    end)

    it("precision_1000", function()
        assert.truthy(precision(false, 1000) >= 0.98)
    end)

    it("get_nns_with_distances", function()
        local i = AnnoyIndex(3, 'euclidean')
        i:add_item(0, {0, 0, 2})
        i:add_item(1, {0, 1, 1})
        i:add_item(2, {1, 0, 0})
        i:build(10)
        local l, d = i:get_nns_by_item(0, 3, -1, true)
        assert.same({0, 1, 2}, l)
        assert.same(roundArray({0, 2, 5}), roundArray({d[1] ^ 2, d[2] ^ 2, d[3] ^ 2}))
        l, d = i:get_nns_by_vector({2, 2, 2}, 3, -1, true)
        assert.same({1, 0, 2}, l)
        assert.same(roundArray({6, 8, 9}), roundArray({d[1] ^ 2, d[2] ^ 2, d[3] ^ 2}))
    end)

    it("include_dists", function()
        local f = 40
        local i = AnnoyIndex(f)
        local v = randomVector(f, 0, 1)
        i:add_item(0, v)
        local neg_v = {}
        for k, value in ipairs(v) do
            neg_v[k] = -value
        end
        i:add_item(1, neg_v)
        i:build(10)
        local indices, dists = i:get_nns_by_item(0, 2, 10, true)
        assert.same({0, 1}, indices)
        assert.same(round(0.0), round(dists[1]))
    end)

end)

describe("index test", function()

    it("not_found_tree", function()
        local i = AnnoyIndex(10)
        assert.has_error(function()
            i:load(tmpfile('nonexists.tree'))
        end)
    end)

    it("binary_compatibility", function()
        -- Annoy's own test/test.tree (tests/data/annoy/old_split_first.tree),
        -- with the neighbours Annoy's test pins.
        local i = AnnoyIndex(10)
        i:load(root .. "/tests/data/annoy/old_split_first.tree")
        assert.same(
            {0, 85, 42, 11, 54, 38, 53, 66, 19, 31},
            i:get_nns_by_item(0, 10)
        )
    end)

    it("binary_compatibility of a forest file saved here", function()
        -- A forest file answers after a save and load exactly as before.
        local path, vectors = fixture()
        local i = AnnoyIndex(10)
        i:load(path)
        local t = AnnoyIndex(10)
        for j = 0, 99 do
            t:add_item(j, vectors[j])
        end
        t:set_seed(1)
        t:build(10)
        for j = 0, 99, 7 do
            assert.same(t:get_nns_by_item(j, 10), i:get_nns_by_item(j, 10))
        end
        assert.equal(0, i:get_nns_by_item(0, 10)[1])
    end)

    it("load_unload", function()
        -- Issue #108
        local path = fixture()
        local i = AnnoyIndex(10)
        for _ = 1, 100000 do
            i:load(path)
            i:unload()
        end
        assert.equal(0, i:get_n_items())
    end)

    it("construct_load_destruct", function()
        local path = fixture()
        for x = 1, 100000 do
            local i = AnnoyIndex(10)
            i:load(path)
            if x % 100 == 0 then
                collectgarbage()
            end
        end
    end)

    it("construct_destruct", function()
        for x = 1, 100000 do
            local i = AnnoyIndex(10)
            i:add_item(1000, randomVector(10, 0, 1))
            -- Lua's collector does not see the items' memory; collect now
            -- and then so the run stays small.
            if x % 1000 == 0 then
                collectgarbage()
            end
        end
    end)

    it("save_twice", function()
        -- Issue #100. (Annoy's test saves an unbuilt index; saving needs a
        -- built one here, see "error paths".)
        local t = AnnoyIndex(10)
        t:add_item(0, randomVector(10))
        t:build(1)
        local path = tmpfile("t.ann")
        assert.truthy(t:save(path))
        assert.truthy(t:save(path))
        assert.same({0}, t:get_nns_by_item(0, 1))
    end)

    it("load_save", function()
        -- Issue #61
        local path = fixture()
        local i = AnnoyIndex(10)
        i:load(path)
        local u = i:get_item_vector(99)
        i:save(tmpfile('i.tree'))
        local v = i:get_item_vector(99)
        assert.same(u, v)
        local j = AnnoyIndex(10)
        j:load(path)
        local w = j:get_item_vector(99)
        assert.same(u, w)
        -- Ensure specifying if prefault is allowed does not impact result
        j:save(tmpfile('j.tree'), true)
        local k = AnnoyIndex(10)
        k:load(tmpfile('j.tree'), true)
        local x = k:get_item_vector(99)
        assert.same(u, x)
        k:save(tmpfile('k.tree'), false)
        local l = AnnoyIndex(10)
        l:load(tmpfile('k.tree'), false)
        local y = l:get_item_vector(99)
        assert.same(u, y)
    end)

    it("on_disk_build", function()
        local path = tmpfile("x.tree")
        local i = AnnoyIndex(2, 'euclidean')
        assert.truthy(i:on_disk_build(path))
        i:add_item(0, {2, 2})
        i:add_item(1, {3, 2})
        i:add_item(2, {3, 3})
        i:build(10)

        i:unload()
        i:load(path)

        assert.same({2, 1, 0}, i:get_nns_by_vector({4, 4}, 3))
        assert.same({0, 1, 2}, i:get_nns_by_vector({1, 1}, 3))
        assert.same({1, 2, 0}, i:get_nns_by_vector({4, 2}, 3))
    end)
end)

describe("types test", function()

    local n_points = 1000
    local n_trees = 10

    -- tests "numpy" and "tuple" are not applicable to Lua

    it("wrong_length", function()
        local f = 10
        local i = AnnoyIndex(f, 'euclidean')
        i:add_item(0, randomVector(f, 0, 1))
        errors_with("Length of v != f", function()
            i:add_item(1, randomVector(f + 1000, 0, 1))
        end)
        errors_with("Length of v != f", function()
            i:add_item(2, {})
        end)
        i:build(n_trees)
        assert.equal(1, i:get_n_items())
    end)

    it("range_errors", function()
        local f = 10
        local i = AnnoyIndex(f, 'euclidean')
        for j = 0, n_points - 1 do
            i:add_item(j, randomVector(f, 0, 1))
        end
        errors_with("Index must be >= 0", function()
            i:add_item(-1, randomVector(f))
        end)
        i:build(n_trees)
        for _, bad_index in ipairs({-1000, -1, n_points, n_points + 1000}) do
            local want = bad_index < 0 and "Index must be >= 0" or "Index must be < size"
            errors_with(want, function()
                i:get_distance(0, bad_index)
            end)
            errors_with(want, function()
                i:get_nns_by_item(bad_index, 1)
            end)
            errors_with(want, function()
                i:get_item_vector(bad_index)
            end)
        end
    end)

end)

describe("memory leaks", function()

    it("get_item_vector", function()
        -- Annoy's test makes 10^8 calls and watches the process; this one
        -- makes 2 * 10^5 and checks that the Lua heap stays flat.
        local f = 10
        local i = AnnoyIndex(f, 'euclidean')
        i:add_item(0, randomVector(f, 0, 1))
        local base
        for j = 1, 20 do
            for _ = 1, 10000 do
                i:get_item_vector(0)
            end
            collectgarbage()
            local kb = collectgarbage("count")
            if j == 2 then
                base = kb
            elseif j > 2 then
                assert.truthy(kb < base + 64, ("heap grew: %.0f KiB -> %.0f KiB"):format(base, kb))
            end
        end
    end)

    it("get_lots_of_nns", function()
        local f = 10
        local i = AnnoyIndex(f, 'euclidean')
        i:add_item(0, randomVector(f, 0, 1))
        i:build(10)
        for _ = 1, 100 do
            assert.same({0}, i:get_nns_by_item(0, 999999999))
        end
    end)

end)

------------------------------------------------------ beyond Annoy's test

describe("other metrics", function()

    it("manhattan: neighbours and distances", function()
        local i = AnnoyIndex(3, 'manhattan')
        i:add_item(0, {0, 0, 2})
        i:add_item(1, {0, 1, 1})
        i:add_item(2, {1, 0, 0})
        i:build(10)
        local l, d = i:get_nns_by_item(0, 3, -1, true)
        assert.same({0, 1, 2}, l)
        assert.same(roundArray({0, 2, 3}), roundArray(d))
        l, d = i:get_nns_by_vector({2, 2, 2}, 3, -1, true)
        -- items 0 and 1 tie at 4
        assert.same(roundArray({4, 4, 5}), roundArray(d))
        assert.equal(2, l[3])
        assert.equal(round(3), round(i:get_distance(0, 2)))
        assert.same({0, 1, 2}, i:get_nns_by_vector({0, 0, 5}, 3))
    end)

    it("dot: larger products first, distance is the product", function()
        local i = AnnoyIndex(2, 'dot')
        i:add_item(0, {2, 2})
        i:add_item(1, {3, 2})
        i:add_item(2, {3, 3})
        i:build(10)
        assert.same({2, 1, 0}, i:get_nns_by_vector({4, 4}, 3))
        assert.same({2, 1, 0}, i:get_nns_by_vector({1, 1}, 3))
        local l, d = i:get_nns_by_vector({4, 2}, 3, -1, true)
        assert.same({2, 1, 0}, l)
        assert.same(roundArray({18, 16, 12}), roundArray(d))
        assert.equal(round(12), round(i:get_distance(0, 2)))
    end)

    it("hamming: bits in, bits out, differing bits as distance", function()
        local f = 70 -- more than one 64-bit word
        local i = AnnoyIndex(f, 'hamming')
        local rows = {}
        for j = 0, 199 do
            local v = {}
            for k = 1, f do
                v[k] = math.random() < 0.5 and 1 or 0
            end
            rows[j] = v
            i:add_item(j, v)
        end
        local function bits(a, b)
            local n = 0
            for k = 1, f do
                if a[k] ~= b[k] then
                    n = n + 1
                end
            end
            return n
        end
        assert.same(rows[5], i:get_item_vector(5))
        assert.equal(bits(rows[3], rows[9]), i:get_distance(3, 9))
        i:build(10)
        local l, d = i:get_nns_by_item(7, 5, 200 * 10 * 4, true)
        assert.equal(7, l[1])
        assert.equal(0, d[1])
        assert.truthy(isSorted(d))
        for k = 1, #l do
            assert.equal(bits(rows[7], rows[l[k]]), d[k])
        end
        -- an exhaustive search finds the true nearest distances
        local all = {}
        for j = 0, 199 do
            all[#all + 1] = bits(rows[7], rows[j])
        end
        table.sort(all)
        assert.same({all[1], all[2], all[3], all[4], all[5]}, d)
    end)

    it("all five metric names, and no others", function()
        for _, m in ipairs({"angular", "euclidean", "manhattan", "hamming", "dot"}) do
            local i = AnnoyIndex(4, m)
            assert.truthy(tostring(i):find(m .. " distance", 1, true))
        end
        errors_with("Unknown metric: cosine", function()
            AnnoyIndex(4, "cosine")
        end)
        errors_with("Unknown metric: Angular", function()
            AnnoyIndex(4, "Angular")
        end)
    end)

end)

describe("methods Annoy added later", function()

    local function items(n, f, seed)
        math.randomseed(seed)
        local rows = {}
        for j = 0, n - 1 do
            rows[j] = randomVector(f)
        end
        return rows
    end

    local function forest(rows, f, seed, n_jobs)
        local i = AnnoyIndex(f, 'euclidean')
        for j = 0, #rows do
            i:add_item(j, rows[j])
        end
        if seed then
            i:set_seed(seed)
        end
        i:build(5, n_jobs)
        return i
    end

    it("get_n_trees, get_n_items", function()
        local i = AnnoyIndex(3)
        assert.equal(0, i:get_n_trees())
        assert.equal(0, i:get_n_items())
        i:add_item(4, {1, 2, 3}) -- ids are dense: 0..4
        assert.equal(5, i:get_n_items())
        i:build(7)
        assert.equal(7, i:get_n_trees())
        assert.equal(5, i:get_n_items())
        local j = AnnoyIndex(3)
        for k = 0, 99 do
            j:add_item(k, randomVector(3))
        end
        j:build(-1)
        assert.truthy(j:get_n_trees() >= 1)
    end)

    it("set_seed: same seed, same trees, whatever n_jobs", function()
        local rows = items(2000, 8, 99)
        local a = forest(rows, 8, 7, 1)
        local b = forest(rows, 8, 7, 2)
        local c = forest(rows, 8, 8, 1)
        local differs = false
        for q = 0, 1999, 40 do
            -- a small search_k makes the answer depend on the trees
            local ra = a:get_nns_by_item(q, 10, 20)
            assert.same(ra, b:get_nns_by_item(q, 10, 20))
            if not differs then
                local rc = c:get_nns_by_item(q, 10, 20)
                for k = 1, math.max(#ra, #rc) do
                    if ra[k] ~= rc[k] then
                        differs = true
                    end
                end
            end
        end
        assert.is_true(differs, "another seed should give other trees")
        local big = 18446744073709551615
        errors_with("seed must be", function() a:set_seed(-1) end)
        errors_with("seed", function() a:set_seed(big * 2) end)
        a:set_seed(2 ^ 53)
    end)

    it("verbose", function()
        local i = AnnoyIndex(3)
        assert.truthy(i:verbose(true))
        assert.truthy(i:verbose(false))
        i:add_item(0, {1, 2, 3})
        assert.truthy(i:build(2))
        errors_with("value expected", function() i:verbose() end)
    end)

    it("n == 0 and search_k", function()
        local i = AnnoyIndex(3)
        for k = 0, 9 do
            i:add_item(k, randomVector(3))
        end
        i:build(3)
        local l, d = i:get_nns_by_item(0, 0, -1, true)
        assert.same({}, l)
        assert.same({}, d)
        assert.same({}, i:get_nns_by_vector({1, 1, 1}, 0))
        -- nil optional arguments mean their defaults
        assert.equal(10, #i:get_nns_by_item(0, 10, nil, nil))
        assert.equal(10, #i:get_nns_by_vector({1, 1, 1}, 10, nil))
        local _, d2 = i:get_nns_by_vector({1, 1, 1}, 3, nil, true)
        assert.equal(3, #d2)
    end)

    it("ids come back as integers", function()
        local i = AnnoyIndex(2)
        i:add_item(0, {1, 0})
        i:add_item(1, {0, 1})
        i:build(1)
        local l = i:get_nns_by_item(0, 2)
        if math.type then
            assert.equal("integer", math.type(l[1]))
            assert.equal("integer", math.type(i:get_n_items()))
        end
        assert.equal("0", tostring(l[1]))
    end)

end)

describe("error paths", function()

    it("wrong vector length and non-numbers", function()
        local i = AnnoyIndex(3)
        errors_with("Length of v != f", function() i:add_item(0, {1, 2}) end)
        errors_with("table expected", function() i:add_item(0, "1,2,3") end)
        errors_with("v[2] is string, not a number", function() i:add_item(0, {1, "x", 3}) end)
        errors_with("Index must be an integer", function() i:add_item(0.5, {1, 2, 3}) end)
        i:add_item(0, {1, 2, 3})
        i:build(1)
        errors_with("Length of v != f", function() i:get_nns_by_vector({1, 2, 3, 4}, 1) end)
        errors_with("number expected", function() i:get_nns_by_vector({1, 2, 3}) end)
        errors_with("n must be >= 0", function() i:get_nns_by_vector({1, 2, 3}, -1) end)
        errors_with("search_k must be >= -1", function() i:get_nns_by_item(0, 1, -2) end)
    end)

    it("bad constructor arguments", function()
        errors_with("f must be >= 1", function() AnnoyIndex(0) end)
        errors_with("number expected", function() AnnoyIndex() end)
        errors_with("string expected", function() AnnoyIndex(3, {}) end)
    end)

    it("load of a missing file", function()
        local i = AnnoyIndex(10)
        local missing = tmpfile("missing.ann")
        errors_with("Can't load file: " .. missing, function() i:load(missing) end)
        errors_with("I/O error", function() i:load(missing) end)
    end)

    it("load of a file of another dimension or metric", function()
        local path = fixture()
        errors_with("10-dimensional angular", function() AnnoyIndex(11):load(path) end)
        errors_with("euclidean", function() AnnoyIndex(10, "euclidean"):load(path) end)
        local garbage = tmpfile("garbage.ann")
        local fh = assert(io.open(garbage, "wb"))
        fh:write(("not a forest"):rep(100))
        fh:close()
        errors_with("bad or corrupt file", function() AnnoyIndex(10):load(garbage) end)
    end)

    it("search and save before build", function()
        local i = AnnoyIndex(3)
        i:add_item(0, {1, 2, 3})
        errors_with("get_nns_by_vector: the index is not built", function()
            i:get_nns_by_vector({1, 2, 3}, 1)
        end)
        errors_with("get_nns_by_item: the index is not built", function()
            i:get_nns_by_item(0, 1)
        end)
        errors_with("(invalid state)", function() i:save(tmpfile("unbuilt.ann")) end)
        -- the index is still usable
        i:build(2)
        assert.same({0}, i:get_nns_by_item(0, 1))
    end)

    it("add after build, after save, after load", function()
        local i = AnnoyIndex(3)
        i:add_item(0, {1, 2, 3})
        i:build(2)
        errors_with("add_item: ", function() i:add_item(1, {1, 2, 3}) end)
        i:save(tmpfile("added.ann"))
        errors_with("(invalid state)", function() i:add_item(1, {1, 2, 3}) end)
        local j = AnnoyIndex(3)
        j:load(tmpfile("added.ann"))
        errors_with("(invalid state)", function() j:add_item(1, {1, 2, 3}) end)
        errors_with("(invalid state)", function() j:build(2) end)
        -- unload empties the index, which then takes items again
        j:unload()
        assert.equal(0, j:get_n_items())
        errors_with("Index must be < size", function() j:get_item_vector(0) end)
        errors_with("not built", function() j:get_nns_by_vector({1, 2, 3}, 1) end)
        j:add_item(0, {3, 2, 1})
        j:build(1)
        assert.same({3, 2, 1}, j:get_item_vector(0))
    end)

    it("build arguments", function()
        local i = AnnoyIndex(3)
        i:add_item(0, {1, 2, 3})
        errors_with("build: n_trees must be at least 1", function() i:build(0) end)
        errors_with("n_jobs must be -1 or >= 1", function() i:build(1, 0) end)
        errors_with("number expected", function() i:build() end)
        assert.truthy(i:build(2, 1))
    end)

    it("methods need an index", function()
        local i = AnnoyIndex(3)
        errors_with("annoy.AnnoyIndex expected", function() i.get_n_items({}) end)
        errors_with("annoy.AnnoyIndex expected", function() i.add_item(io.stdout, 0, {1, 2, 3}) end)
    end)

end)

describe("life cycle", function()

    it("a collected handle's index is freed, and a freed handle errors", function()
        local i = AnnoyIndex(3)
        i:add_item(0, {1, 2, 3})
        local gc = getmetatable(i).__gc
        gc(i)
        gc(i) -- a second free is a no-op
        assert.equal("annoy.AnnoyIndex object (closed)", tostring(i))
        errors_with("the index has been closed", function() i:get_n_items() end)
        errors_with("the index has been closed", function() i:add_item(1, {1, 2, 3}) end)
        errors_with("the index has been closed", function() i:get_nns_by_vector({1, 2, 3}, 1) end)
        errors_with("the index has been closed", function() i:load(fixture()) end)
    end)

    it("__close frees at the end of the scope (Lua 5.4)", function()
        if runtime ~= "5.4" then
            assert.is_nil(getmetatable(AnnoyIndex(3)).__close)
            return
        end
        local chunk = assert(load([[
            local AnnoyIndex = ...
            local kept
            do
                local i <close> = AnnoyIndex(3)
                i:add_item(0, {1, 2, 3})
                kept = i
                assert(i:get_n_items() == 1)
            end
            return kept
        ]]))
        local i = chunk(AnnoyIndex)
        errors_with("the index has been closed", function() i:get_n_items() end)
    end)

    it("__tostring", function()
        local i = AnnoyIndex(7, "euclidean")
        i:add_item(2, randomVector(7))
        assert.equal("annoy.AnnoyIndex object (3x7, euclidean distance)", tostring(i))
    end)

end)

describe("C ABI panics", function()

    it("become Lua errors and leave the index usable", function()
        local i = AnnoyIndex(3)
        i:add_item(0, {1, 2, 3})
        annoy._debug_panic_next_call()
        errors_with("(panic)", function() i:get_n_items() end)
        assert.equal(1, i:get_n_items())
        annoy._debug_panic_next_call()
        errors_with("build: ", function() i:build(2) end)
        assert.equal(0, i:get_n_trees())
        assert.truthy(i:build(2))
        annoy._debug_panic_next_call()
        local err = errors_with("(panic)", function() i:get_nns_by_item(0, 1) end)
        assert.truthy(err:find("panic", 1, true))
        assert.same({0}, i:get_nns_by_item(0, 1))
        annoy._debug_panic_next_call()
        errors_with("(panic)", function() AnnoyIndex(3) end)
        -- disarmed: nothing happens
        annoy._debug_panic_next_call()
        annoy._debug_panic_next_call(false)
        assert.equal(1, i:get_n_items())
    end)

end)

describe("files from other swann front ends", function()

    it("a forest built by the swann CLI loads and answers exactly", function()
        local n, f = 300, 8
        local rows = {}
        for j = 1, n do
            local v = {}
            for k = 1, f do
                v[k] = math.random(-8, 8) / 4 -- exact in float32
            end
            v[1 + (j % f)] = 2.5 -- never the zero vector
            rows[j] = v
        end
        local base = tmpfile("base.fvecs")
        write_fvecs(base, rows)
        for _, metric in ipairs({"angular", "euclidean"}) do
            local out = tmpfile("cli-" .. metric .. ".swf")
            local cmd = ("cd %s && %s build forest --base %s --metric %s --trees 10 --out %s >/dev/null"):format(
                shell_quote(root), swann_cli(), shell_quote(base), metric, shell_quote(out))
            assert.is_true(run(cmd), "failed: " .. cmd)
            local i = AnnoyIndex(f, metric)
            assert.truthy(i:load(out))
            assert.equal(n, i:get_n_items())
            assert.equal(10, i:get_n_trees())
            for _, j in ipairs({0, 17, 299}) do
                assert.same(rows[j + 1], i:get_item_vector(j))
            end
            local function dist(a, b)
                if metric == "euclidean" then
                    local s = 0
                    for k = 1, f do
                        s = s + (a[k] - b[k]) ^ 2
                    end
                    return s ^ 0.5
                end
                local ab, aa, bb = 0, 0, 0
                for k = 1, f do
                    ab, aa, bb = ab + a[k] * b[k], aa + a[k] ^ 2, bb + b[k] ^ 2
                end
                return math.max(0, 2 - 2 * ab / (aa * bb) ^ 0.5) ^ 0.5
            end
            for q = 1, n, 37 do
                local want = {}
                for j = 1, n do
                    want[j] = dist(rows[q], rows[j])
                end
                table.sort(want)
                -- an exhaustive search_k: the exact neighbours
                local l, d = i:get_nns_by_vector(rows[q], 10, n * 10 * 10, true)
                assert.equal(10, #l)
                assert.same(roundArray(first_n(want, 10)), roundArray(d))
                local l2 = i:get_nns_by_item(q - 1, 10, n * 10 * 10)
                assert.equal(10, #l2)
            end
        end
    end)

    it("Annoy files (tests/data/annoy, Annoy 1.17.3) load and answer as Annoy", function()
        local i = AnnoyIndex(16)
        i:load(root .. "/tests/data/annoy/angular.ann")
        assert.equal(600, i:get_n_items())
        assert.equal(8, i:get_n_trees())
        -- Annoy's answers with an exhaustive search_k (angular.json).
        assert.same({0, 541, 242, 438, 317, 260, 222, 418, 352, 264},
            i:get_nns_by_item(0, 10, 19200))
        assert.same({7, 570, 136, 219, 268, 238, 232, 332, 497, 340},
            i:get_nns_by_item(7, 10, 19200))
        -- Read-only until unloaded; saving writes the file again.
        errors_with("add_item", function() i:add_item(0, randomVector(16, 0, 1)) end)
        local copy = tmpfile("annoy_copy.ann")
        assert.truthy(i:save(copy))
        local j = AnnoyIndex(16)
        j:load(copy)
        assert.same(i:get_nns_by_item(7, 10, 19200), j:get_nns_by_item(7, 10, 19200))
        i:unload()
        i:add_item(0, randomVector(16, 0, 1))
        -- A file that does not fit the index's dimension is refused.
        local k = AnnoyIndex(15)
        errors_with("Can't load file", function()
            k:load(root .. "/tests/data/annoy/angular.ann")
        end)
    end)

end)
