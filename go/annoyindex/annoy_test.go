// The cases of Annoy's test/annoy_test.go, in both of its generations: the
// annoyindex package's slices (*[]int out-arguments) and the later annoy
// package's AnnoyVectorInt/AnnoyVectorFloat.

package annoyindex_test

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/swann-ann/swann/go/annoyindex"
)

func Round(f float64) float64 {
	return math.Floor(f + 0.5)
}

func RoundPlus(f float64, places int) float64 {
	shift := math.Pow(10, float64(places))
	return Round(f*shift) / shift
}

func equal(t *testing.T, want, got interface{}) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("expected %v, got %v", want, got)
	}
}

func inDir(t *testing.T) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
}

func stat(t *testing.T, name string) {
	t.Helper()
	info, err := os.Stat(name)
	if err != nil {
		t.Fatalf("Failed to create file, file not found: %v", err)
	}
	if info.Size() == 0 {
		t.Fatal("Failed to create file, file size zero")
	}
}

func TestFileHandling(t *testing.T) {
	inDir(t)
	index := annoyindex.NewAnnoyIndexAngular(3)
	index.AddItem(0, []float32{0, 0, 1})
	index.AddItem(1, []float32{0, 1, 0})
	index.AddItem(2, []float32{1, 0, 0})
	index.Build(10)

	if !index.Save("go_test.ann") {
		t.Fatal(index.LastError())
	}
	stat(t, "go_test.ann")
	annoyindex.DeleteAnnoyIndexAngular(index)

	index = annoyindex.NewAnnoyIndexAngular(3)
	if ret := index.Load("go_test.ann"); !ret {
		t.Fatalf("Failed to load file: %v", index.LastError())
	}

	os.Remove("go_test.ann")
	index.Save("go_test2.ann", false)
	stat(t, "go_test2.ann")
	annoyindex.DeleteAnnoyIndexAngular(index)

	index = annoyindex.NewAnnoyIndexAngular(3)
	if ret := index.Load("go_test2.ann", false); !ret {
		t.Fatalf("Failed to load file without prefault: %v", index.LastError())
	}

	os.Remove("go_test2.ann")
	index.Save("go_test3.ann", true)
	stat(t, "go_test3.ann")
	annoyindex.DeleteAnnoyIndexAngular(index)

	index = annoyindex.NewAnnoyIndexAngular(3)
	if ret := index.Load("go_test3.ann", true); !ret {
		t.Fatalf("Failed to load file allowing prefault: %v", index.LastError())
	}
	var result []int
	index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, &result)
	equal(t, []int{2, 1, 0}, result)
	annoyindex.DeleteAnnoyIndexAngular(index)
}

func TestOnDiskBuild(t *testing.T) {
	inDir(t)
	index := annoyindex.NewAnnoyIndexAngular(3)
	if !index.OnDiskBuild("go_test.ann") {
		t.Fatal(index.LastError())
	}
	stat(t, "go_test.ann")

	index.AddItem(0, []float32{0, 0, 1})
	index.AddItem(1, []float32{0, 1, 0})
	index.AddItem(2, []float32{1, 0, 0})
	index.Build(10)

	index.Unload()
	if !index.Load("go_test.ann") {
		t.Fatal(index.LastError())
	}

	var result []int
	index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, &result)
	equal(t, []int{2, 1, 0}, result)
	index.GetNnsByVector([]float32{1, 2, 3}, 3, -1, &result)
	equal(t, []int{0, 1, 2}, result)
	index.GetNnsByVector([]float32{2, 0, 1}, 3, -1, &result)
	equal(t, []int{2, 0, 1}, result)

	vec := annoyindex.NewAnnoyVectorInt()
	defer vec.Free()
	index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, vec)
	equal(t, []int32{2, 1, 0}, vec.ToSlice())

	annoyindex.DeleteAnnoyIndexAngular(index)
}

func TestGetNnsByVector(t *testing.T) {
	index := annoyindex.NewAnnoyIndexAngular(3)
	index.AddItem(0, []float32{0, 0, 1})
	index.AddItem(1, []float32{0, 1, 0})
	index.AddItem(2, []float32{1, 0, 0})
	index.Build(10)
	defer annoyindex.DeleteAnnoyIndexAngular(index)

	t.Run("slices", func(t *testing.T) {
		var result []int
		index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, &result)
		equal(t, []int{2, 1, 0}, result)
		index.GetNnsByVector([]float32{1, 2, 3}, 3, -1, &result)
		equal(t, []int{0, 1, 2}, result)
		index.GetNnsByVector([]float32{2, 0, 1}, 3, -1, &result)
		equal(t, []int{2, 0, 1}, result)
	})

	t.Run("regular", func(t *testing.T) {
		result := annoyindex.NewAnnoyVectorInt()
		defer result.Free()

		index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, result)
		equal(t, []int32{2, 1, 0}, result.ToSlice())
		index.GetNnsByVector([]float32{1, 2, 3}, 3, -1, result)
		equal(t, []int32{0, 1, 2}, result.ToSlice())
		index.GetNnsByVector([]float32{2, 0, 1}, 3, -1, result)
		equal(t, []int32{2, 0, 1}, result.ToSlice())
	})

	t.Run("with copying", func(t *testing.T) {
		result := annoyindex.NewAnnoyVectorInt()
		defer result.Free()

		var notAllocated []int32
		index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, result)
		result.Copy(&notAllocated)
		equal(t, []int32{2, 1, 0}, notAllocated)

		// to make sure it will be overwritten
		var alreadyAllocated = make([]int32, 10)
		for i := 0; i < len(alreadyAllocated); i++ {
			alreadyAllocated[i] = -1
		}
		index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, result)
		result.Copy(&alreadyAllocated)
		equal(t, []int32{2, 1, 0}, alreadyAllocated)

		var alreadyAllocatedCap = make([]int32, 0, 00)
		index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, result)
		result.Copy(&alreadyAllocatedCap)
		equal(t, []int32{2, 1, 0}, alreadyAllocatedCap)
	})

	t.Run("with inner array", func(t *testing.T) {
		result := annoyindex.NewAnnoyVectorInt()
		defer result.Free()

		index.GetNnsByVector([]float32{3, 2, 1}, 3, -1, result)
		equal(t, []int32{2, 1, 0}, result.InnerArray())
		equal(t, 3, result.Len())
		equal(t, int32(1), result.Get(1))
		equal(t, int32(0), result.Get(3))
	})

	t.Run("with distances", func(t *testing.T) {
		var result []int
		var distances []float32
		index.GetNnsByVector([]float32{0, 0, 2}, 2, -1, &result, &distances)
		equal(t, []int{0, 1}, result)
		if len(distances) != 2 || distances[0] != 0 || math.Abs(float64(distances[1])-math.Sqrt2) > 1e-6 {
			t.Errorf("distances %v, want [0 sqrt(2)]", distances)
		}
		ids := annoyindex.NewAnnoyVectorInt()
		dist := annoyindex.NewAnnoyVectorFloat()
		index.GetNnsByVector([]float32{0, 0, 2}, 2, -1, ids, dist)
		equal(t, []int32{0, 1}, ids.ToSlice())
		equal(t, distances, dist.ToSlice())
	})
}

func TestGetNnsByItem(t *testing.T) {
	index := annoyindex.NewAnnoyIndexAngular(3)
	index.AddItem(0, []float32{2, 1, 0})
	index.AddItem(1, []float32{1, 2, 0})
	index.AddItem(2, []float32{0, 0, 1})
	index.Build(10)
	defer annoyindex.DeleteAnnoyIndexAngular(index)

	var result []int
	index.GetNnsByItem(0, 3, -1, &result)
	equal(t, []int{0, 1, 2}, result)
	index.GetNnsByItem(1, 3, -1, &result)
	equal(t, []int{1, 0, 2}, result)

	vec := annoyindex.NewAnnoyVectorInt()
	defer vec.Free()
	index.GetNnsByItem(0, 3, -1, vec)
	equal(t, []int32{0, 1, 2}, vec.ToSlice())
	index.GetNnsByItem(1, 3, -1, vec)
	equal(t, []int32{1, 0, 2}, vec.ToSlice())
}

func TestGetItem(t *testing.T) {
	index := annoyindex.NewAnnoyIndexAngular(3)
	index.AddItem(0, []float32{2, 1, 0})
	index.AddItem(1, []float32{1, 2, 0})
	index.AddItem(2, []float32{0, 0, 1})
	index.Build(10)
	defer annoyindex.DeleteAnnoyIndexAngular(index)

	var result []float32
	index.GetItem(0, &result)
	equal(t, []float32{2, 1, 0}, result)
	index.GetItem(1, &result)
	equal(t, []float32{1, 2, 0}, result)

	vec := annoyindex.NewAnnoyVectorFloat()
	defer vec.Free()
	index.GetItem(2, vec)
	equal(t, []float32{0, 0, 1}, vec.ToSlice())
}

func TestGetDistance(t *testing.T) {
	index := annoyindex.NewAnnoyIndexAngular(2)
	index.AddItem(0, []float32{0, 1})
	index.AddItem(1, []float32{1, 1})
	index.Build(10)

	equal(t, RoundPlus(math.Pow(2*(1.0-math.Pow(2, -0.5)), 0.5), 3), RoundPlus(float64(index.GetDistance(0, 1)), 3))

	annoyindex.DeleteAnnoyIndexAngular(index)
}

func TestGetDotProductDistance(t *testing.T) {
	index := annoyindex.NewAnnoyIndexDotProduct(2)
	index.AddItem(0, []float32{0, 1})
	index.AddItem(1, []float32{1, 1})
	index.Build(10)

	if d := index.GetDistance(0, 1); math.Abs(1.0-float64(d)) >= 0.00001 {
		t.Errorf("dot product distance %v, want 1", d)
	}

	annoyindex.DeleteAnnoyIndexDotProduct(index)
}

func TestLargeEuclideanIndex(t *testing.T) {
	rand.Seed(5)
	index := annoyindex.NewAnnoyIndexEuclidean(10)

	for j := 0; j < 10000; j += 2 {
		p := make([]float32, 0, 10)
		for i := 0; i < 10; i++ {
			p = append(p, rand.Float32())
		}
		x := make([]float32, 0, 10)
		for i := 0; i < 10; i++ {
			x = append(x, 1+p[i]+rand.Float32()*1e-2)
		}
		y := make([]float32, 0, 10)
		for i := 0; i < 10; i++ {
			y = append(y, 1+p[i]+rand.Float32()*1e-2)
		}
		index.AddItem(j, x)
		index.AddItem(j+1, y)
	}
	index.Build(10)
	result := annoyindex.NewAnnoyVectorInt()
	defer result.Free()
	for j := 0; j < 10000; j += 2 {
		var r []int
		index.GetNnsByItem(j, 2, -1, &r)
		if !reflect.DeepEqual(r, []int{j, j + 1}) {
			t.Fatalf("item %d: got %v", j, r)
		}
		index.GetNnsByItem(j+1, 2, -1, result)
		if !reflect.DeepEqual(result.ToSlice(), []int32{int32(j) + 1, int32(j)}) {
			t.Fatalf("item %d: got %v", j+1, result.ToSlice())
		}
	}
	annoyindex.DeleteAnnoyIndexEuclidean(index)
}

// Annoy's test/on_disk_build_test.py: the file is a complete index.
func TestOnDiskBuildFileLoadsElsewhere(t *testing.T) {
	file := filepath.Join(t.TempDir(), "on_disk.ann")
	a := annoyindex.NewAnnoyIndexEuclidean(2)
	defer a.Free()
	if err := a.OnDiskBuildErr(file); err != nil {
		t.Fatal(err)
	}
	for i, v := range [][]float32{{2, 2}, {3, 2}, {3, 3}} {
		a.AddItem(i, v)
	}
	if err := a.BuildErr(10, 1); err != nil {
		t.Fatal(err)
	}
	b := annoyindex.NewAnnoyIndexEuclidean(2)
	defer b.Free()
	if err := b.LoadErr(file, false); err != nil {
		t.Fatal(err)
	}
	for _, x := range []annoyindex.AnnoyIndex{a, b} {
		ids, _, err := x.NnsByVector([]float32{4, 4}, 3, -1)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, []int{2, 1, 0}, ids)
		ids, _, _ = x.NnsByVector([]float32{1, 1}, 3, -1)
		equal(t, []int{0, 1, 2}, ids)
		ids, _, _ = x.NnsByVector([]float32{4, 2}, 3, -1)
		equal(t, []int{1, 2, 0}, ids)
	}
}
