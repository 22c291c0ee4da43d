-- Searches a forest file through the annoy module and writes the results
-- as `swann query --results` does (one line per query, "label:distance"
-- pairs, distances as printf's %.9g), for .ci/crosslang.sh.
--
--   lua5.4 lua/crosslang.lua INDEX DIM METRIC QUERIES.txt K SEARCH_K OUT
--
-- QUERIES.txt holds one query per line, components separated by spaces.
-- Runs under any runtime lua/build.sh built a module for.

local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or "."
local runtime = (type(jit) == "table") and "luajit" or _VERSION:match("%d+%.%d+")
package.cpath = here .. "/build/" .. runtime .. "/?.so;" .. package.cpath
local annoy = require "annoy"

local index_path, dim, metric, queries_path, k, search_k, out_path =
    arg[1], tonumber(arg[2]), arg[3], arg[4], tonumber(arg[5]), tonumber(arg[6]), arg[7]
if not out_path or not dim or not k or not search_k then
    io.stderr:write("usage: crosslang.lua INDEX DIM METRIC QUERIES.txt K SEARCH_K OUT\n")
    os.exit(2)
end

local index = annoy.AnnoyIndex(dim, metric)
index:load(index_path)

local out = assert(io.open(out_path, "w"))
local n = 0
for line in assert(io.open(queries_path, "r")):lines() do
    local v = {}
    for x in line:gmatch("%S+") do
        v[#v + 1] = assert(tonumber(x), "not a number: " .. x)
    end
    if #v ~= dim then
        error(string.format("%s line %d holds %d numbers, not %d", queries_path, n + 1, #v, dim))
    end
    local ids, dists = index:get_nns_by_vector(v, k, search_k, true)
    local parts = {}
    for j = 1, #ids do
        parts[j] = string.format("%d:%.9g", ids[j], dists[j])
    end
    out:write(table.concat(parts, " "), "\n")
    n = n + 1
end
out:close()
io.stderr:write(string.format("crosslang.lua (%s): %d queries searched\n", runtime, n))
