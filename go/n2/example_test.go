package n2_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swann-ann/swann/go/n2"
)

// N2's examples/go/example_l2.go, on fixed data.
func Example() {
	dir, err := os.MkdirTemp("", "n2-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "test.n2")

	t := n2.NewHnswIndex(3, "L2")
	for _, item := range [][]float32{{0, 0, 1}, {0, 1, 0}, {1, 0, 0}, {2, 1, 0}, {3, 3, 3}} {
		t.AddData(item)
	}
	t.Build(5, 10, 4, 10, 3.5, "heuristic", "skip")
	t.SaveModel(file)
	n2.DeleteHnswIndex(t)

	other := n2.NewHnswIndex(0, "L2")
	defer n2.DeleteHnswIndex(other)
	if !other.LoadModel(file) {
		fmt.Println(other.LastError())
		return
	}
	var result []int
	var distance []float32
	other.SearchByVector([]float32{2, 1, 0}, 3, -1, &result, &distance)
	fmt.Printf("[SearchByVector]: %v %v\n", result, distance)
	other.SearchById(4, 2, -1, &result, &distance)
	fmt.Printf("[SearchById]: %v %v\n", result, distance)

	// The error-returning variants.
	_, _, err = other.SearchID(9, 2, -1)
	fmt.Println("id 9 not found:", errors.Is(err, n2.ErrNotFound))
	// Output:
	// [SearchByVector]: [3 2 1] [0 2 4]
	// [SearchById]: [4 3] [0 14]
	// id 9 not found: true
}
