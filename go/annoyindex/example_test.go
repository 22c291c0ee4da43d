package annoyindex_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swann-ann/swann/go/annoyindex"
)

// Annoy's README_GO.rst example, on fixed data.
func Example() {
	dir, err := os.MkdirTemp("", "annoy-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "test.ann")

	t := annoyindex.NewAnnoyIndexEuclidean(2)
	t.AddItem(0, []float32{2, 2})
	t.AddItem(1, []float32{3, 2})
	t.AddItem(2, []float32{3, 3})
	t.Build(10)
	t.Save(file)
	annoyindex.DeleteAnnoyIndexEuclidean(t)

	t = annoyindex.NewAnnoyIndexEuclidean(2)
	defer annoyindex.DeleteAnnoyIndexEuclidean(t)
	t.Load(file)

	var result []int
	var distances []float32
	t.GetNnsByVector([]float32{4, 4}, 3, -1, &result, &distances)
	fmt.Println(result, distances)

	vec := annoyindex.NewAnnoyVectorInt()
	defer vec.Free()
	t.GetNnsByItem(0, 1000, -1, vec)
	fmt.Println(vec.ToSlice())

	// The error-returning variants.
	err = t.AddItemErr(3, []float32{1, 1})
	fmt.Println("read-only after Load:", errors.Is(err, annoyindex.ErrState))
	// Output:
	// [2 1 0] [1.4142135 2.236068 2.828427]
	// [0 1 2]
	// read-only after Load: true
}
