package annoyindex_test

import (
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/swann-ann/swann/go/annoyindex"
	"github.com/swann-ann/swann/go/internal/capi"
)

func TestBadConstruction(t *testing.T) {
	if _, err := annoyindex.New(0, "angular"); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("f = 0: %v", err)
	}
	if _, err := annoyindex.New(3, "cosine"); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("unknown metric: %v", err)
	}
	index := annoyindex.NewAnnoyIndexEuclidean(-2)
	if !errors.Is(index.LastError(), annoyindex.ErrInvalidArgument) {
		t.Errorf("LastError after NewAnnoyIndexEuclidean(-2): %v", index.LastError())
	}
	index.AddItem(0, []float32{1, 2})
	if index.LastError() == nil {
		t.Error("AddItem on a badly made index succeeded")
	}
	if index.GetNItems() != 0 || index.Save("x.ann") {
		t.Error("a badly made index answered")
	}
	annoyindex.DeleteAnnoyIndexEuclidean(index)
}

func TestBadInput(t *testing.T) {
	index := annoyindex.NewAnnoyIndexAngular(3)
	defer index.Free()
	if err := index.AddItemErr(0, []float32{1, 2}); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("short vector: %v", err)
	}
	index.AddItem(0, []float32{1, 2, 3, 4})
	if !errors.Is(index.LastError(), annoyindex.ErrInvalidArgument) {
		t.Errorf("long vector: %v", index.LastError())
	}
	if err := index.AddItemErr(-1, []float32{1, 2, 3}); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("negative id: %v", err)
	}
	if err := index.AddItemErr(0, []float32{1, float32(math.Inf(1)), 3}); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("infinite component: %v", err)
	}
	if err := index.AddItemErr(1<<33, []float32{1, 2, 3}); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("id above UINT32_MAX: %v", err)
	}
	index.AddItem(0, []float32{1, 2, 3})
	if err := index.LastError(); err != nil {
		t.Fatal(err)
	}
	if index.GetNItems() != 1 {
		t.Errorf("items %d", index.GetNItems())
	}
	if err := index.BuildErr(5, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := index.NnsByVector([]float32{1, 2}, 1, -1); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("short query: %v", err)
	}
	if _, _, err := index.NnsByItem(7, 1, -1); err == nil {
		t.Error("search by a missing item succeeded")
	}
	if _, err := index.Item(7); err == nil {
		t.Error("GetItem of a missing item succeeded")
	}
	if d, err := index.Distance(0, 7); err == nil || !math.IsNaN(float64(d)) {
		t.Errorf("distance to a missing item: %v, %v", d, err)
	}
	if _, _, err := index.NnsByItem(0, -1, -1); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("n = -1: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("GetNnsByItem with a []int out-argument did not panic")
			}
		}()
		var r []int
		index.GetNnsByItem(0, 1, -1, r)
	}()
}

func TestStateErrors(t *testing.T) {
	index := annoyindex.NewAnnoyIndexEuclidean(2)
	defer index.Free()
	index.AddItem(0, []float32{1, 1})
	index.AddItem(1, []float32{2, 2})
	var r []int
	index.GetNnsByItem(0, 2, -1, &r)
	if !errors.Is(index.LastError(), annoyindex.ErrState) || r != nil {
		t.Errorf("search before Build: %v %v", r, index.LastError())
	}
	if index.Save(filepath.Join(t.TempDir(), "unbuilt.ann")) || !errors.Is(index.LastError(), annoyindex.ErrState) {
		t.Errorf("Save before Build: %v", index.LastError())
	}
	if index.GetNTrees() != 0 {
		t.Errorf("trees before Build: %d", index.GetNTrees())
	}
	index.Build(4)
	if index.GetNTrees() != 4 {
		t.Errorf("trees after Build(4): %d", index.GetNTrees())
	}
	if err := index.AddItemErr(2, []float32{3, 3}); !errors.Is(err, annoyindex.ErrState) {
		t.Errorf("AddItem after Build: %v", err)
	}
	index.Build(1, 2, 3)
	if !errors.Is(index.LastError(), annoyindex.ErrInvalidArgument) {
		t.Errorf("Build with two job counts: %v", index.LastError())
	}
	index.Unload()
	if index.GetNItems() != 0 {
		t.Errorf("items after Unload: %d", index.GetNItems())
	}
	if err := index.AddItemErr(0, []float32{1, 1}); err != nil {
		t.Errorf("AddItem after Unload: %v", err)
	}
	annoyindex.DeleteAnnoyIndexEuclidean(index)
	if _, _, err := index.NnsByItem(0, 1, -1); !errors.Is(err, annoyindex.ErrState) {
		t.Errorf("search after Delete: %v", err)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	index := annoyindex.NewAnnoyIndexAngular(3)
	defer index.Free()
	if index.Load(filepath.Join(dir, "missing.ann")) || !errors.Is(index.LastError(), annoyindex.ErrIO) {
		t.Errorf("missing file: %v", index.LastError())
	}
	junk := filepath.Join(dir, "junk.ann")
	if err := os.WriteFile(junk, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := index.LoadErr(junk, false); !errors.Is(err, annoyindex.ErrFormat) {
		t.Errorf("junk file: %v", err)
	}
	index.AddItem(0, []float32{1, 0, 0})
	index.AddItem(1, []float32{0, 1, 0})
	index.Build(3)
	if err := index.SaveErr(filepath.Join(dir, "no", "dir", "x.ann"), false); !errors.Is(err, annoyindex.ErrIO) {
		t.Errorf("save into a missing directory: %v", err)
	}
	file := filepath.Join(dir, "ok.ann")
	if err := index.SaveErr(file, false); err != nil {
		t.Fatal(err)
	}
	// Save maps the file: the index is read-only, as in Annoy.
	if err := index.AddItemErr(2, []float32{0, 0, 1}); !errors.Is(err, annoyindex.ErrState) {
		t.Errorf("AddItem after Save: %v", err)
	}
	other := annoyindex.NewAnnoyIndexAngular(4)
	defer other.Free()
	if err := other.LoadErr(file, false); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("load of a file of another dimension: %v", err)
	}
	euclid := annoyindex.NewAnnoyIndexEuclidean(3)
	defer euclid.Free()
	if err := euclid.LoadErr(file, false); !errors.Is(err, annoyindex.ErrInvalidArgument) {
		t.Errorf("load of a file of another metric: %v", err)
	}
	same := annoyindex.NewAnnoyIndexAngular(3)
	defer same.Free()
	if err := same.LoadErr(file, true); err != nil {
		t.Fatal(err)
	}
	if same.GetNItems() != 2 || same.GetNTrees() != 3 {
		t.Errorf("loaded: %d items, %d trees", same.GetNItems(), same.GetNTrees())
	}
}

func TestMetricsDistances(t *testing.T) {
	cases := []struct {
		index annoyindex.AnnoyIndex
		a, b  []float32
		want  float64
	}{
		{annoyindex.NewAnnoyIndexEuclidean(2), []float32{0, 0}, []float32{3, 4}, 5},
		{annoyindex.NewAnnoyIndexManhattan(2), []float32{0, 0}, []float32{3, 4}, 7},
		{annoyindex.NewAnnoyIndexAngular(2), []float32{1, 0}, []float32{0, 5}, math.Sqrt2},
		{annoyindex.NewAnnoyIndexDotProduct(2), []float32{1, 2}, []float32{3, 4}, 11},
		{annoyindex.NewAnnoyIndexHamming(8), []float32{1, 1, 0, 0, 1, 0, 0, 0}, []float32{1, 0, 0, 0, 1, 1, 1, 0}, 3},
	}
	for _, c := range cases {
		c.index.AddItem(0, c.a)
		c.index.AddItem(1, c.b)
		c.index.Build(2)
		d, err := c.index.Distance(0, 1)
		if err != nil || math.Abs(float64(d)-c.want) > 1e-5 {
			t.Errorf("%s: distance %v (%v), want %v", c.index.Metric(), d, err, c.want)
		}
		ids, dists, err := c.index.NnsByItem(0, 2, -1)
		wantIds, at := []int{0, 1}, 1
		if c.index.Metric() == "dot" {
			// Larger is nearer: (1,2).(3,4) = 11 beats (1,2).(1,2) = 5.
			wantIds, at = []int{1, 0}, 0
		}
		if err != nil || !reflect.DeepEqual(ids, wantIds) || dists[at] != d {
			t.Errorf("%s: by item %v %v %v", c.index.Metric(), ids, dists, err)
		}
		c.index.Free()
	}
	h := annoyindex.NewAnnoyIndexHamming(4)
	defer h.Free()
	h.AddItem(0, []float32{0.9, 0.2, 0.7, 0})
	var v []float32
	h.GetItem(0, &v)
	equal(t, []float32{1, 0, 1, 0}, v)
}

func TestSeedAndAutomaticTrees(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	rows := make([][]float32, 500)
	for i := range rows {
		rows[i] = []float32{float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())}
	}
	run := func(seed uint64, jobs int) ([]int, int) {
		x := annoyindex.NewAnnoyIndexAngular(4)
		defer x.Free()
		x.SetSeed(seed)
		x.Verbose(false)
		for i, r := range rows {
			x.AddItem(i, r)
		}
		x.Build(-1, jobs)
		if err := x.LastError(); err != nil {
			t.Fatal(err)
		}
		ids, _, err := x.NnsByVector([]float32{1, 0, 0, 0}, 20, 30)
		if err != nil {
			t.Fatal(err)
		}
		return ids, x.GetNTrees()
	}
	a, na := run(42, 1)
	b, nb := run(42, 2)
	if !reflect.DeepEqual(a, b) || na != nb {
		t.Errorf("same seed, other thread count: %v (%d trees) vs %v (%d trees)", a, na, b, nb)
	}
	if na < 1 {
		t.Errorf("Build(-1) built %d trees", na)
	}
}

// Forest results against the C ABI's exact flat scan.
func TestAgainstExactSearch(t *testing.T) {
	const n, dim, k = 2000, 12, 10
	rng := rand.New(rand.NewSource(17))
	data := make([]float32, n*dim)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	labels := make([]uint64, n)
	for i := range labels {
		labels[i] = uint64(i)
	}
	for _, metric := range []string{"angular", "euclidean", "manhattan"} {
		x, err := annoyindex.New(dim, metric)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := x.AddItemErr(i, data[i*dim:(i+1)*dim]); err != nil {
				t.Fatal(err)
			}
		}
		if err := x.BuildErr(20, 2); err != nil {
			t.Fatal(err)
		}
		flat, err := capi.NewFlat(dim, metric)
		if err != nil {
			t.Fatal(err)
		}
		if err := flat.AddBatch(labels, data); err != nil {
			t.Fatal(err)
		}
		hits := 0
		for q := 0; q < 50; q++ {
			v := make([]float32, dim)
			for i := range v {
				v[i] = float32(rng.NormFloat64())
			}
			ids, dists, err := x.NnsByVector(v, k, 4000)
			if err != nil {
				t.Fatal(err)
			}
			exact := make([]uint64, k)
			exactD := make([]float32, k)
			if _, err := flat.Search(v, exact, exactD); err != nil {
				t.Fatal(err)
			}
			truth := map[int]float32{}
			for i, l := range exact {
				truth[int(l)] = exactD[i]
			}
			for i, id := range ids {
				if want, ok := truth[id]; ok {
					hits++
					if math.Abs(float64(dists[i]-want)) > 1e-4*math.Max(1, float64(want)) {
						t.Errorf("%s: id %d at %v, exact scan says %v", metric, id, dists[i], want)
					}
				}
				if i > 0 && dists[i] < dists[i-1] {
					t.Fatalf("%s: distances not ascending: %v", metric, dists)
				}
			}
		}
		flat.Free()
		x.Free()
		recall := float64(hits) / float64(50*k)
		t.Logf("%s: recall@%d = %.3f", metric, k, recall)
		if recall < 0.9 {
			t.Errorf("%s: recall@%d = %.3f, want >= 0.9", metric, k, recall)
		}
	}
}

func TestPanicComesBackAsError(t *testing.T) {
	index := annoyindex.NewAnnoyIndexAngular(3)
	defer index.Free()
	index.AddItem(0, []float32{1, 0, 0})
	index.AddItem(1, []float32{0, 1, 0})
	index.Build(2)
	var ids []int
	capi.WithPanicNextCall(func() { index.GetNnsByItem(0, 2, -1, &ids) })
	err := index.LastError()
	if !errors.Is(err, annoyindex.ErrPanic) || !strings.Contains(err.Error(), "forced by swann_debug_panic_next_call") || ids != nil {
		t.Fatalf("got %v %v", ids, err)
	}
	index.GetNnsByItem(0, 2, -1, &ids)
	if err := index.LastError(); err != nil || !reflect.DeepEqual(ids, []int{0, 1}) {
		t.Errorf("after the panic: %v %v", ids, err)
	}
}

func TestConcurrentSearches(t *testing.T) {
	rng := rand.New(rand.NewSource(23))
	index := annoyindex.NewAnnoyIndexEuclidean(6)
	defer index.Free()
	for i := 0; i < 1000; i++ {
		v := make([]float32, 6)
		for j := range v {
			v[j] = rng.Float32()
		}
		index.AddItem(i, v)
	}
	index.Build(10, -1)
	want := make([][]int, 100)
	for i := range want {
		want[i], _, _ = index.NnsByItem(i, 5, -1)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < 3; r++ {
				for i := range want {
					i := (i + g) % len(want)
					got, _, err := index.NnsByItem(i, 5, -1)
					if err != nil || !reflect.DeepEqual(got, want[i]) {
						mu.Lock()
						bad++
						mu.Unlock()
					}
				}
			}
		}(g)
	}
	wg.Wait()
	if bad != 0 {
		t.Errorf("%d concurrent searches differ from the serial ones", bad)
	}
}
