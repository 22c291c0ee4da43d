// Command swann-crosslang builds and searches forests through the Go
// package annoyindex, for the check that an index written in one language
// answers the same in every other (.ci/crosslang.sh).
//
//	swann-crosslang build  -data base.fvecs -metric angular -trees 20 -seed 42 -out forest.swann
//	swann-crosslang search -index forest.swann -metric angular -queries q.fvecs -k 10 -search-k 2000 -out go.txt
//
// Results are written one line per query, "label:distance" pairs separated
// by spaces, nearest first, distances as printf's %.9g writes them: the
// format `swann query --results` writes.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/swann-ann/swann/go/annoyindex"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: swann-crosslang build|search [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "search":
		err = search(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (build or search)", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "swann-crosslang:", err)
	os.Exit(1)
}

// readFvecs reads a .fvecs file: per row a little-endian int32 dimension,
// then that many float32 components.
func readFvecs(path string) ([][]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var rows [][]float32
	for {
		var dim int32
		if err := binary.Read(r, binary.LittleEndian, &dim); err == io.EOF {
			return rows, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if dim <= 0 || (len(rows) > 0 && int(dim) != len(rows[0])) {
			return nil, fmt.Errorf("%s: row %d has dimension %d", path, len(rows), dim)
		}
		row := make([]float32, dim)
		if err := binary.Read(r, binary.LittleEndian, row); err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", path, len(rows), err)
		}
		rows = append(rows, row)
	}
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	data := fs.String("data", "", "base vectors (.fvecs); row i gets id i")
	metric := fs.String("metric", "angular", "angular, euclidean, manhattan or dot")
	trees := fs.Int("trees", 10, "number of trees")
	seed := fs.Uint64("seed", 42, "seed of the random splits")
	out := fs.String("out", "", "index file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows, err := readFvecs(*data)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s holds no vectors", *data)
	}
	idx, err := annoyindex.New(len(rows[0]), *metric)
	if err != nil {
		return err
	}
	defer idx.Free()
	idx.SetSeed(*seed)
	for i, v := range rows {
		if err := idx.AddItemErr(i, v); err != nil {
			return err
		}
	}
	if err := idx.BuildErr(*trees, 1); err != nil {
		return err
	}
	return idx.SaveErr(*out, false)
}

func search(args []string) error {
	fs := flag.NewFlagSet("search", flag.ExitOnError)
	index := fs.String("index", "", "index file")
	metric := fs.String("metric", "angular", "the index's metric")
	queries := fs.String("queries", "", "query vectors (.fvecs)")
	k := fs.Int("k", 10, "neighbours per query")
	searchK := fs.Int("search-k", -1, "candidates per query (-1: Annoy's default)")
	out := fs.String("out", "", "results file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	qs, err := readFvecs(*queries)
	if err != nil {
		return err
	}
	if len(qs) == 0 {
		return fmt.Errorf("%s holds no vectors", *queries)
	}
	idx, err := annoyindex.New(len(qs[0]), *metric)
	if err != nil {
		return err
	}
	defer idx.Free()
	if err := idx.LoadErr(*index, false); err != nil {
		return err
	}
	var b strings.Builder
	for _, q := range qs {
		ids, dists, err := idx.NnsByVector(q, *k, *searchK)
		if err != nil {
			return err
		}
		for j := range ids {
			if j > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%d:%s", ids[j], g9(dists[j]))
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(*out, []byte(b.String()), 0o644)
}

// g9 writes d as C's printf("%.9g", d) does.
func g9(d float32) string {
	x := float64(d)
	switch {
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	case math.IsNaN(x):
		return "nan"
	}
	return fmt.Sprintf("%.9g", x)
}
