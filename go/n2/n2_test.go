// The cases of N2's tests/golang_test/n2_test.go and
// tests/python_test/test_n2.py, on this package.

package n2_test

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/swann-ann/swann/go/n2"
)

func FloatArrayEquals(a []float32, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i, v := range a {
		if v != b[i] {
			return false
		}
	}
	return true
}

func IntArrayEquals(a []int, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i, v := range a {
		if v != b[i] {
			return false
		}
	}
	return true
}

func TestSearchByVectorL2(t *testing.T) {
	file := filepath.Join(t.TempDir(), "test.n2")
	f := 3
	index := n2.NewHnswIndex(f, "L2")
	index.AddData([]float32{0, 0, 1})
	index.AddData([]float32{0, 1, 0})
	index.AddData([]float32{1, 0, 0})
	index.Build(5, 10, 4, 10, 3.5, "heuristic", "skip")
	if !index.SaveModel(file) {
		t.Fatalf("SaveModel failed: %v", index.LastError())
	}

	var result []int
	var distance []float32
	index.SearchByVector([]float32{1, 2, 3}, 3, -1, &result, &distance)
	if len(result) != 3 {
		t.Errorf("Result should be 3 not %d", len(result))
	}
	expected := []int{0, 1, 2}
	expectedDistances := []float32{9.0, 11.0, 13.0}
	if !IntArrayEquals(expected, result) {
		t.Errorf("Expected %v but got %v", expected, result)
	}
	if !FloatArrayEquals(expectedDistances, distance) {
		t.Errorf("Expected %v but got %v", expectedDistances, distance)
	}

	n2.DeleteHnswIndex(index)
	for _, mmap := range []bool{true, false} {
		index = n2.NewHnswIndex(f, "L2")
		var ok bool
		if mmap {
			ok = index.LoadModel(file)
		} else {
			ok = index.LoadModel(file, false)
		}
		if !ok {
			t.Fatalf("Failed to load file (mmap %v): %v", mmap, index.LastError())
		}
		index.SearchByVector([]float32{1, 2, 3}, 3, -1, &result, &distance)
		if !IntArrayEquals(expected, result) || !FloatArrayEquals(expectedDistances, distance) {
			t.Errorf("loaded (mmap %v): expected %v %v but got %v %v", mmap, expected, expectedDistances, result, distance)
		}
		n2.DeleteHnswIndex(index)
	}
	os.Remove(file)
}

// N2's Go test expects [0 1 2] for all three queries, which is not the
// angular order (item 2 = (1,0,0) is nearest to (3,2,1)); its Python test
// has the right expectations, checked here.
func TestSearchByVectorAngular(t *testing.T) {
	f := 3
	index := n2.NewHnswIndex(f, "angular")
	index.AddData([]float32{0, 0, 1})
	index.AddData([]float32{0, 1, 0})
	index.AddData([]float32{1, 0, 0})
	index.Build(5, 10, 4, 10, 3.5, "heuristic", "skip")
	defer n2.DeleteHnswIndex(index)

	cases := []struct {
		q    []float32
		want []int
	}{
		{[]float32{3, 2, 1}, []int{2, 1, 0}},
		{[]float32{1, 2, 3}, []int{0, 1, 2}},
		{[]float32{2, 0, 1}, []int{2, 0, 1}},
	}
	for _, c := range cases {
		var result []int
		index.SearchByVector(c.q, 3, -1, &result)
		if len(result) != 3 {
			t.Errorf("The length of the result should be 3 not %d: %v", len(result), result)
		}
		if !IntArrayEquals(c.want, result) {
			t.Errorf("%v: expected %v but got %v", c.q, c.want, result)
		}
	}
}

func TestSearchByIdAngular(t *testing.T) {
	f := 3
	index := n2.NewHnswIndex(f, "angular")
	index.AddData([]float32{2, 1, 0})
	index.AddData([]float32{1, 2, 0})
	index.AddData([]float32{0, 0, 1})
	index.Build(5, 10, 4, 1, 3.5, "heuristic", "skip")
	defer n2.DeleteHnswIndex(index)

	var result []int
	index.SearchById(0, 3, -1, &result)
	if !IntArrayEquals([]int{0, 1, 2}, result) {
		t.Errorf("Expected %v but got %v", []int{0, 1, 2}, result)
	}
	index.SearchById(1, 3, -1, &result)
	if !IntArrayEquals([]int{1, 0, 2}, result) {
		t.Errorf("Expected %v but got %v", []int{1, 0, 2}, result)
	}
	index.SearchById(2, 3, -1, &result)
	if !IntArrayEquals([]int{2, 0, 1}, result) && !IntArrayEquals([]int{2, 1, 0}, result) {
		t.Errorf("Expected [2 0 1] or [2 1 0] but got %v", result)
	}
}

func TestL2SearchByVectorAndId(t *testing.T) {
	index := n2.NewHnswIndex(2, "L2")
	defer n2.DeleteHnswIndex(index)
	index.AddData([]float32{2, 2})
	index.AddData([]float32{3, 2})
	index.AddData([]float32{3, 3})
	index.Build(0, 0, 0, 0, 0, "", "")
	if err := index.LastError(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    []float32
		want []int
	}{
		{[]float32{4, 4}, []int{2, 1, 0}},
		{[]float32{1, 1}, []int{0, 1, 2}},
		{[]float32{4, 2}, []int{1, 2, 0}},
	} {
		var result []int
		index.SearchByVector(c.q, 3, -1, &result)
		if !IntArrayEquals(c.want, result) {
			t.Errorf("%v: expected %v but got %v", c.q, c.want, result)
		}
	}
	var result []int
	index.SearchById(0, 3, -1, &result)
	if !IntArrayEquals([]int{0, 1, 2}, result) {
		t.Errorf("by id 0: got %v", result)
	}
	index.SearchById(2, 3, -1, &result)
	if !IntArrayEquals([]int{2, 1, 0}, result) {
		t.Errorf("by id 2: got %v", result)
	}
}

func TestLargeL2(t *testing.T) {
	rand.Seed(7)
	f := 10
	index := n2.NewHnswIndex(f, "L2")
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
		index.AddData(x)
		index.AddData(y)
	}

	index.Build(5, 10, 300, 10, 3.5, "heuristic", "skip")
	if err := index.LastError(); err != nil {
		t.Fatal(err)
	}

	for j := 0; j < 10000; j += 2 {
		var result []int
		index.SearchById(j, 2, -1, &result)
		if !IntArrayEquals([]int{j, j + 1}, result) {
			t.Fatalf("Expected %v but got %v", []int{j, j + 1}, result)
		}
		index.SearchById(j+1, 2, -1, &result)
		if !IntArrayEquals([]int{j + 1, j}, result) {
			t.Fatalf("Expected %v but got %v", []int{j + 1, j}, result)
		}
	}
	n2.DeleteHnswIndex(index)
}

// test_n2.py's precision: points at distance j from a centre, in order.
func TestPrecision(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, metric := range []string{"L2", "angular"} {
		for _, n := range []int{1, 10, 100} {
			found, rounds := 0, 3
			for r := 0; r < rounds; r++ {
				f := 10
				index := n2.NewHnswIndex(f, metric)
				for j := 0; j < 2000; j++ {
					p := make([]float64, f-1)
					norm := 0.0
					for i := range p {
						p[i] = rng.NormFloat64()
						norm += p[i] * p[i]
					}
					x := make([]float32, f)
					if metric == "angular" {
						x[0] = 1000
					}
					for i := range p {
						x[i+1] = float32(p[i] / math.Sqrt(norm) * float64(j))
					}
					if metric == "L2" {
						x[0] = 0
					}
					index.AddData(x)
				}
				index.Build(0, 0, 0, 2, 0, "", "")
				q := make([]float32, f)
				if metric == "angular" {
					q[0] = 1000
				}
				nns, _, err := index.Search(q, n, -1)
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i < len(nns); i++ {
					if nns[i] < nns[i-1] {
						t.Fatalf("%s n=%d: results not in order: %v", metric, n, nns)
					}
				}
				for _, id := range nns {
					if id < n {
						found++
					}
				}
				n2.DeleteHnswIndex(index)
			}
			if p := float64(found) / float64(n*rounds); p < 0.98 {
				t.Errorf("%s: precision@%d = %.3f, want >= 0.98", metric, n, p)
			}
		}
	}
}
