package n2_test

import (
	"encoding/binary"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/swann-ann/swann/go/internal/capi"
	"github.com/swann-ann/swann/go/n2"
)

// dataset is a deterministic clustered data set: n rows of dim floats.
func dataset(seed int64, n, dim int) [][]float32 {
	rng := rand.New(rand.NewSource(seed))
	centres := make([][]float32, 20)
	for c := range centres {
		centres[c] = make([]float32, dim)
		for i := range centres[c] {
			centres[c][i] = float32(rng.NormFloat64() * 4)
		}
	}
	rows := make([][]float32, n)
	for r := range rows {
		c := centres[rng.Intn(len(centres))]
		rows[r] = make([]float32, dim)
		for i := range rows[r] {
			rows[r][i] = c[i] + float32(rng.NormFloat64())
		}
	}
	return rows
}

func buildIndex(t *testing.T, metric string, rows [][]float32) n2.HnswIndex {
	t.Helper()
	index := n2.NewHnswIndex(len(rows[0]), metric)
	for _, r := range rows {
		index.AddData(r)
	}
	if err := index.BuildErr(12, 24, 100, 2, 0, "heuristic", "skip"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(index.Free)
	return index
}

// The HNSW results against the C ABI's exact flat scan: high recall, and
// every distance reported is the exact distance of that id.
func TestAgainstExactSearch(t *testing.T) {
	const n, dim, k = 3000, 16, 10
	rows := dataset(11, n, dim)
	queries := dataset(12, 100, dim)
	// The dot product is not a metric, and a graph search finds its
	// largest values less reliably on data that is not normalized.
	for _, m := range []struct {
		n2, flat  string
		minRecall float64
	}{{"L2", "l2", 0.97}, {"angular", "cosine", 0.97}, {"dot", "dot", 0.7}} {
		index := buildIndex(t, m.n2, rows)
		flat, err := capi.NewFlat(dim, m.flat)
		if err != nil {
			t.Fatal(err)
		}
		labels := make([]uint64, n)
		data := make([]float32, 0, n*dim)
		for i, r := range rows {
			labels[i] = uint64(i)
			data = append(data, r...)
		}
		if err := flat.AddBatch(labels, data); err != nil {
			t.Fatal(err)
		}
		hits := 0
		for _, q := range queries {
			ids, dists, err := index.Search(q, k, 200)
			if err != nil {
				t.Fatal(err)
			}
			exact := make([]uint64, k)
			exactD := make([]float32, k)
			if _, err := flat.Search(q, exact, exactD); err != nil {
				t.Fatal(err)
			}
			truth := map[int]bool{}
			for _, l := range exact {
				truth[int(l)] = true
			}
			for i, id := range ids {
				if truth[id] {
					hits++
				}
				if i > 0 && m.n2 != "dot" && dists[i] < dists[i-1] {
					t.Fatalf("%s: distances not ascending: %v", m.n2, dists)
				}
				if m.n2 == "dot" && i > 0 && dists[i] > dists[i-1] {
					t.Fatalf("dot: scores not descending: %v", dists)
				}
			}
			// Every distance reported is that id's distance in N2's terms.
			for i, id := range ids {
				want := refDistance(m.n2, q, rows[id])
				if d := float64(dists[i]); math.Abs(d-want) > 1e-4*math.Max(1, math.Abs(want)) {
					t.Fatalf("%s: id %d at distance %v, computed %v", m.n2, id, d, want)
				}
			}
		}
		flat.Free()
		recall := float64(hits) / float64(len(queries)*k)
		t.Logf("%s: recall@%d = %.4f", m.n2, k, recall)
		if recall < m.minRecall {
			t.Errorf("%s: recall@%d = %.4f, want >= %.2f", m.n2, k, recall, m.minRecall)
		}
	}
}

// refDistance is N2's distance between a and b, in float64.
func refDistance(metric string, a, b []float32) float64 {
	var dot, na, nb, l2 float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
		l2 += (x - y) * (x - y)
	}
	switch metric {
	case "L2":
		return l2
	case "angular":
		return 1 - dot/math.Sqrt(na*nb)
	default:
		return dot
	}
}

func writeFvecs(t *testing.T, path string, rows [][]float32) {
	t.Helper()
	var buf []byte
	for _, r := range rows {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r)))
		for _, f := range r {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
		}
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cli finds the swann command: $SWANN_CLI, else the workspace's release
// build (cargo build --release -p swann-cli).
func cli(t *testing.T) string {
	if p := os.Getenv("SWANN_CLI"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "target", "release", "swann"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no swann command at %s (build it with cargo build --release -p swann-cli, or set SWANN_CLI)", p)
	}
	return p
}

// An index built and saved through Go, searched by the Rust command line
// tool (swann query) and through Go at the same ef: the same ids.
func TestSameResultsAsRustCLI(t *testing.T) {
	bin := cli(t)
	const dim, k, ef = 24, 10, 40
	rows := dataset(21, 2000, dim)
	queries := dataset(22, 5, dim)
	dir := t.TempDir()
	qfile := filepath.Join(dir, "q.fvecs")
	writeFvecs(t, qfile, queries)
	for _, metric := range []string{"L2", "angular"} {
		index := buildIndex(t, metric, rows)
		file := filepath.Join(dir, metric+".swann")
		if !index.SaveModel(file) {
			t.Fatal(index.LastError())
		}
		out, err := exec.Command(bin, "query", file, "--queries", qfile,
			"--k", strconv.Itoa(k), "--ef", strconv.Itoa(ef)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s query: %v\n%s", bin, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < len(queries) {
			t.Fatalf("swann query printed:\n%s", out)
		}
		lines = lines[len(lines)-len(queries):]
		loaded := n2.NewHnswIndex(dim, metric)
		if !loaded.LoadModel(file) {
			t.Fatal(loaded.LastError())
		}
		for i, q := range queries {
			for _, x := range []n2.HnswIndex{index, loaded} {
				ids, _, err := x.Search(q, k, ef)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]string, len(ids))
				for j, id := range ids {
					got[j] = strconv.Itoa(id)
				}
				if g := strings.Join(got, " "); g != lines[i] {
					t.Errorf("%s query %d: Go %q, Rust %q", metric, i, g, lines[i])
				}
			}
		}
		loaded.Free()
	}
}

// Searches from many goroutines at once give the serial results.
func TestConcurrentSearches(t *testing.T) {
	rows := dataset(31, 1500, 8)
	index := buildIndex(t, "L2", rows)
	queries := dataset(32, 64, 8)
	want := make([][]int, len(queries))
	for i, q := range queries {
		want[i], _, _ = index.Search(q, 5, 50)
	}
	errs := make(chan string, 8*len(queries))
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func(g int) {
			defer func() { done <- struct{}{} }()
			for r := 0; r < 3; r++ {
				for i := range queries {
					i := (i + g) % len(queries)
					var ids []int
					index.SearchByVector(queries[i], 5, 50, &ids)
					if !IntArrayEquals(ids, want[i]) {
						errs <- "query " + strconv.Itoa(i)
					}
				}
			}
		}(g)
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	close(errs)
	for e := range errs {
		t.Errorf("concurrent %s differs", e)
	}
}
