package n2_test

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/swann-ann/swann/go/n2"
)

// BenchmarkSearch times single-thread k=10 searches through the binding,
// with synthetic queries, on the L2 index file $SWANN_BENCH_INDEX (from
// `swann build hnsw`) or else on a synthetic clustered set; ef is
// $SWANN_BENCH_EF (default 64). For a comparison with the Rust call on
// real queries use cmd/swann-gobench through bench.sh.
func BenchmarkSearch(b *testing.B) {
	ef := 64
	if s := os.Getenv("SWANN_BENCH_EF"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		ef = v
	}
	var index n2.HnswIndex
	dim := 32
	if path := os.Getenv("SWANN_BENCH_INDEX"); path != "" {
		index = n2.NewHnswIndex(0, "L2")
		if err := index.LoadModelErr(path, true); err != nil {
			b.Fatal(err)
		}
		dim = index.Dim()
	} else {
		index = n2.NewHnswIndex(dim, "L2")
		for _, r := range dataset(41, 20000, dim) {
			index.AddData(r)
		}
		if err := index.BuildErr(16, 32, 100, -1, 0, "", ""); err != nil {
			b.Fatal(err)
		}
	}
	defer index.Free()
	queries := dataset(42, 1000, dim)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := index.Search(queries[i%len(queries)], 10, ef); err != nil {
			b.Fatal(err)
		}
	}
}
