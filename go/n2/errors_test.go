package n2_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swann-ann/swann/go/internal/capi"
	"github.com/swann-ann/swann/go/n2"
)

func small(t *testing.T, metric string) n2.HnswIndex {
	t.Helper()
	index := n2.NewHnswIndex(3, metric)
	for _, v := range [][]float32{{0, 0, 1}, {0, 1, 0}, {1, 0, 0}, {1, 1, 1}} {
		if err := index.AddDataErr(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := index.BuildErr(5, 10, 40, 1, 0, "heuristic", "skip"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(index.Free)
	return index
}

func TestBadConstruction(t *testing.T) {
	if _, err := n2.NewHnswIndexErr(3, "cosine"); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("unknown metric: got %v", err)
	}
	if _, err := n2.NewHnswIndexErr(-1, "L2"); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("negative dimension: got %v", err)
	}
	// The N2-shaped constructor gives an index that reports the error.
	index := n2.NewHnswIndex(3, "hamming")
	if err := index.LastError(); !errors.Is(err, n2.ErrInvalidArgument) || !strings.Contains(err.Error(), "hamming") {
		t.Errorf("LastError after a bad metric: %v", err)
	}
	index.AddData([]float32{1, 2, 3})
	if index.LastError() == nil {
		t.Error("AddData on a badly made index succeeded")
	}
	var ids []int
	index.SearchByVector([]float32{1, 2, 3}, 1, -1, &ids)
	if ids != nil || index.LastError() == nil {
		t.Errorf("search on a badly made index: %v, %v", ids, index.LastError())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("NewHnswIndex(\"3\") did not panic")
			}
		}()
		n2.NewHnswIndex("3")
	}()
}

func TestBadDimensions(t *testing.T) {
	index := n2.NewHnswIndex(3, "L2")
	defer index.Free()
	err := index.AddDataErr([]float32{1, 2})
	if !errors.Is(err, n2.ErrInvalidArgument) || !strings.Contains(err.Error(), "Invalid dimension data inserted: 2, Predefined dimension: 3") {
		t.Errorf("short vector: %v", err)
	}
	index.AddData([]float32{1, 2, 3, 4})
	if !errors.Is(index.LastError(), n2.ErrInvalidArgument) {
		t.Errorf("long vector: %v", index.LastError())
	}
	if err := index.AddDataErr([]float32{1, float32(math.NaN()), 3}); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("NaN: %v", err)
	}
	if n := index.NumItems(); n != 0 {
		t.Errorf("rejected vectors were queued: %d items", n)
	}
	index.AddData([]float32{1, 2, 3})
	if err := index.LastError(); err != nil {
		t.Errorf("LastError after a good AddData: %v", err)
	}
	index.Build(5, 0, 0, 1, 0, "", "")
	if _, _, err := index.Search([]float32{1, 2}, 1, -1); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("short query: %v", err)
	}
	if _, _, err := index.Search([]float32{1, 2, 3}, 0, -1); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("k = 0: %v", err)
	}
}

func TestUnbuiltIndex(t *testing.T) {
	index := n2.NewHnswIndex(3, "angular")
	defer index.Free()
	var ids []int
	index.SearchByVector([]float32{1, 2, 3}, 3, -1, &ids)
	if !errors.Is(index.LastError(), n2.ErrState) || ids != nil {
		t.Errorf("search before Build: %v %v", ids, index.LastError())
	}
	if index.SaveModel(filepath.Join(t.TempDir(), "x.n2")) {
		t.Error("SaveModel of an unbuilt index succeeded")
	}
	index.Build(5, 10, 4, 1, 0, "heuristic", "skip")
	if err := index.LastError(); !errors.Is(err, n2.ErrState) || !strings.Contains(err.Error(), "No data to fit") {
		t.Errorf("Build without data: %v", err)
	}
	index.AddData([]float32{1, 2, 3})
	if err := index.BuildErr(5, 10, 4, 1, 0, "clever", "skip"); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("bad neighbor_selecting: %v", err)
	}
	if err := index.BuildErr(5, 10, 4, 1, 0, "heuristic", "merge_all"); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("bad graph_merging: %v", err)
	}
	if err := index.BuildErr(500, 10, 4, 1, 0, "heuristic", "skip"); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("M = 500: %v", err)
	}
	if err := index.BuildErr(5, 10, 4, 1, 0, "naive", "merge_level0"); err != nil {
		t.Fatal(err)
	}
	index.UnloadModel()
	if _, _, err := index.Search([]float32{1, 2, 3}, 1, -1); !errors.Is(err, n2.ErrState) {
		t.Errorf("search after UnloadModel: %v", err)
	}
}

func TestMissingAndCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	index := n2.NewHnswIndex(3, "L2")
	defer index.Free()
	if index.LoadModel(filepath.Join(dir, "missing.n2")) {
		t.Error("LoadModel of a missing file succeeded")
	}
	if !errors.Is(index.LastError(), n2.ErrIO) {
		t.Errorf("missing file: %v", index.LastError())
	}
	junk := filepath.Join(dir, "junk.n2")
	if err := os.WriteFile(junk, []byte("this is not an index file, not at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mmap := range []bool{true, false} {
		if err := index.LoadModelErr(junk, mmap); !errors.Is(err, n2.ErrFormat) {
			t.Errorf("junk file (mmap %v): %v", mmap, err)
		}
	}
	built := small(t, "L2")
	if err := built.SaveModelErr(filepath.Join(dir, "no", "such", "dir.n2")); !errors.Is(err, n2.ErrIO) {
		t.Errorf("save into a missing directory: %v", err)
	}
	if err := built.SaveModelErr("bad\x00name"); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("save to a name with NUL: %v", err)
	}
}

func TestLoadModelChecksAndTakesTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m.n2")
	built := small(t, "dot")
	if !built.SaveModel(file) {
		t.Fatal(built.LastError())
	}
	wrong := n2.NewHnswIndex(4, "dot")
	defer wrong.Free()
	if err := wrong.LoadModelErr(file, true); !errors.Is(err, n2.ErrInvalidArgument) || !strings.Contains(err.Error(), "index dimension(4) != model dimension(3)") {
		t.Errorf("dimension mismatch: %v", err)
	}
	// Dimension 0 takes the file's; the metric comes from the file, as in N2.
	any := n2.NewHnswIndex(0, "angular")
	defer any.Free()
	if !any.LoadModel(file) {
		t.Fatal(any.LastError())
	}
	if any.Dim() != 3 || any.Metric() != "dot" || any.NumItems() != 4 {
		t.Errorf("loaded: dim %d metric %s items %d", any.Dim(), any.Metric(), any.NumItems())
	}
	if err := any.AddDataErr([]float32{1, 2, 3}); !errors.Is(err, n2.ErrState) || !strings.Contains(err.Error(), "already has a trained model") {
		t.Errorf("AddData after LoadModel: %v", err)
	}
	if err := any.BuildErr(0, 0, 0, 0, 0, "", ""); !errors.Is(err, n2.ErrState) {
		t.Errorf("Build after LoadModel: %v", err)
	}
	a, da, err := built.Search([]float32{1, 2, 3}, 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, db, err := any.Search([]float32{1, 2, 3}, 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !IntArrayEquals(a, b) || !FloatArrayEquals(da, db) {
		t.Errorf("built %v %v, loaded %v %v", a, da, b, db)
	}
}

func TestDotReportsTheDotProduct(t *testing.T) {
	index := small(t, "dot")
	ids, d, err := index.Search([]float32{1, 2, 3}, 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	// (1,1,1).q = 6, (0,0,1).q = 3, (0,1,0).q = 2, (1,0,0).q = 1: larger first.
	if !IntArrayEquals(ids, []int{3, 0, 1, 2}) {
		t.Errorf("ids %v", ids)
	}
	want := []float32{6, 3, 2, 1}
	for i := range want {
		if math.Abs(float64(d[i]-want[i])) > 1e-5 {
			t.Errorf("distances %v, want %v", d, want)
			break
		}
	}
}

func TestAngularReportsOneMinusCos(t *testing.T) {
	index := small(t, "angular")
	ids, d, err := index.Search([]float32{0, 0, 2}, 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, float32(1 - 1/math.Sqrt(3)), 1, 1}
	if ids[0] != 0 || ids[1] != 3 {
		t.Errorf("ids %v", ids)
	}
	for i := range want {
		if math.Abs(float64(d[i]-want[i])) > 1e-5 {
			t.Errorf("distances %v, want %v", d, want)
			break
		}
	}
}

func TestSearchByIdErrors(t *testing.T) {
	index := small(t, "L2")
	var ids []int
	var d []float32
	index.SearchById(99, 2, -1, &ids, &d)
	if !errors.Is(index.LastError(), n2.ErrNotFound) || ids != nil || d != nil {
		t.Errorf("unknown id: %v %v %v", ids, d, index.LastError())
	}
	if _, _, err := index.SearchID(-1, 2, -1); !errors.Is(err, n2.ErrInvalidArgument) {
		t.Errorf("negative id: %v", err)
	}
	index.SearchById(3, 2, -1, &ids, &d)
	if index.LastError() != nil || len(ids) != 2 || ids[0] != 3 || d[0] != 0 {
		t.Errorf("id 3: %v %v %v", ids, d, index.LastError())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("SearchById with a []int out-argument did not panic")
			}
		}()
		index.SearchById(3, 2, -1, ids)
	}()
}

func TestAddAfterBuildNeedsAnotherBuild(t *testing.T) {
	index := small(t, "L2")
	index.AddData([]float32{5, 5, 5})
	if index.NumItems() != 5 {
		t.Errorf("items %d", index.NumItems())
	}
	ids, _, _ := index.Search([]float32{5, 5, 5}, 1, -1)
	if len(ids) != 1 || ids[0] == 4 {
		t.Errorf("a queued vector was found before Build: %v", ids)
	}
	if err := index.BuildErr(0, 0, 0, 0, 0, "", ""); err != nil {
		t.Fatal(err)
	}
	ids, _, _ = index.Search([]float32{5, 5, 5}, 1, -1)
	if len(ids) != 1 || ids[0] != 4 {
		t.Errorf("after the second Build: %v", ids)
	}
}

// A panic inside the library, forced by the C ABI's debug hook, comes back
// as an error; the process and the index go on.
func TestPanicComesBackAsError(t *testing.T) {
	index := small(t, "L2")
	var err error
	capi.WithPanicNextCall(func() {
		_, _, err = index.Search([]float32{1, 2, 3}, 2, -1)
	})
	if !errors.Is(err, n2.ErrPanic) || !strings.Contains(err.Error(), "forced by swann_debug_panic_next_call") {
		t.Fatalf("got %v", err)
	}
	ids, _, err := index.Search([]float32{1, 0, 0}, 1, -1)
	if err != nil || len(ids) != 1 || ids[0] != 2 {
		t.Errorf("search after the panic: %v %v", ids, err)
	}
	var ok bool
	file := filepath.Join(t.TempDir(), "p.n2")
	capi.WithPanicNextCall(func() { ok = index.SaveModel(file) })
	if ok || !errors.Is(index.LastError(), n2.ErrPanic) {
		t.Errorf("SaveModel under the hook: %v %v", ok, index.LastError())
	}
	if !index.SaveModel(file) {
		t.Errorf("SaveModel after the panic: %v", index.LastError())
	}
}

func TestConfigs(t *testing.T) {
	index := small(t, "angular")
	text, err := index.Configs()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"n2_metric=angular", "metric=cosine", "dim=3", "ef_construction=40"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("configs lack %q:\n%s", want, text)
		}
	}
	unbuilt := n2.NewHnswIndex(3)
	defer unbuilt.Free()
	unbuilt.PrintConfigs()
	if !errors.Is(unbuilt.LastError(), n2.ErrState) {
		t.Errorf("PrintConfigs before Build: %v", unbuilt.LastError())
	}
}

func TestUseAfterDelete(t *testing.T) {
	index := n2.NewHnswIndex(3, "L2")
	index.AddData([]float32{1, 2, 3})
	index.Build(0, 0, 0, 0, 0, "", "")
	n2.DeleteHnswIndex(index)
	n2.DeleteHnswIndex(index)
	if _, _, err := index.Search([]float32{1, 2, 3}, 1, -1); !errors.Is(err, n2.ErrState) {
		t.Errorf("search after delete: %v", err)
	}
}
