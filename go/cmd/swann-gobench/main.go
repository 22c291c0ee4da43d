// Command swann-gobench measures single-thread k-NN queries per second
// through the Go binding (package n2) on an HNSW index file written by
// `swann build hnsw`, timed the way `swann bench index` times the Rust
// call: 50 warm-up queries, then -reps passes over the queries (each at
// least 100 ms), the median per-query time reported.
//
//	swann-gobench -index sift.swann -queries q.bvecs -groundtruth gt.ivecs -ef 64,128
//
// It prints one line per ef: "ef=64 recall@10=0.9512 qps=8123.4".
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/swann-ann/swann/go/n2"
)

func main() {
	indexPath := flag.String("index", "", "HNSW index file (swann build hnsw)")
	queriesPath := flag.String("queries", "", "query vectors (.fvecs or .bvecs)")
	gtPath := flag.String("groundtruth", "", "ground-truth ids (.ivecs); optional")
	k := flag.Int("k", 10, "neighbours per query")
	efList := flag.String("ef", "10,20,40,80,120,200,400", "comma-separated ef values")
	reps := flag.Int("reps", 3, "timed passes per ef (median taken)")
	load := flag.Bool("load", false, "read the file into memory instead of mapping it")
	flag.Parse()
	if err := run(*indexPath, *queriesPath, *gtPath, *k, *efList, *reps, *load); err != nil {
		fmt.Fprintln(os.Stderr, "swann-gobench:", err)
		os.Exit(1)
	}
}

func run(indexPath, queriesPath, gtPath string, k int, efList string, reps int, load bool) error {
	if indexPath == "" || queriesPath == "" {
		return errors.New("-index and -queries are required")
	}
	if k <= 0 || reps <= 0 {
		return errors.New("-k and -reps must be positive")
	}
	var efs []int
	for _, s := range strings.Split(efList, ",") {
		ef, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || ef <= 0 {
			return fmt.Errorf("bad -ef value %q", s)
		}
		efs = append(efs, ef)
	}
	queries, err := readVectors(queriesPath)
	if err != nil {
		return err
	}
	var gt [][]int32
	if gtPath != "" {
		if gt, err = readIvecs(gtPath); err != nil {
			return err
		}
		if len(gt) < len(queries) || len(gt[0]) < k {
			return fmt.Errorf("%s: %d rows of %d ids, need %d rows of %d", gtPath, len(gt), len(gt[0]), len(queries), k)
		}
	}
	index, err := n2.NewHnswIndexErr(0, "L2")
	if err != nil {
		return err
	}
	defer index.Free()
	t := time.Now()
	if err := index.LoadModelErr(indexPath, !load); err != nil {
		return err
	}
	fmt.Printf("opened %s (%d items, dim %d, metric %s) in %.1f ms; %d queries, k=%d, 1 thread, %s\n",
		indexPath, index.NumItems(), index.Dim(), index.Metric(), float64(time.Since(t).Microseconds())/1e3,
		len(queries), k, runtime.Version())
	if len(queries[0]) != index.Dim() {
		return fmt.Errorf("queries have %d components, the index %d", len(queries[0]), index.Dim())
	}
	// One goroutine on one OS thread, as the Rust loop runs.
	runtime.LockOSThread()
	for _, ef := range efs {
		results, qps, err := timeQueries(index, queries, k, ef, reps)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("ef=%d", ef)
		if gt != nil {
			hits := 0
			for i, r := range results {
				truth := gt[i][:k]
				for _, id := range r {
					for _, g := range truth {
						if int32(id) == g {
							hits++
							break
						}
					}
				}
			}
			line += fmt.Sprintf(" recall@%d=%.4f", k, float64(hits)/float64(k*len(results)))
		}
		fmt.Printf("%s qps=%.1f\n", line, qps)
	}
	return nil
}

func timeQueries(index n2.HnswIndex, queries [][]float32, k, ef, reps int) ([][]int, float64, error) {
	for i := 0; i < 50 && i < len(queries); i++ {
		if _, _, err := index.Search(queries[i], k, ef); err != nil {
			return nil, 0, err
		}
	}
	results := make([][]int, len(queries))
	perQuery := make([]float64, 0, reps)
	for r := 0; r < reps; r++ {
		start := time.Now()
		done := 0
		for {
			for i, q := range queries {
				ids, _, err := index.Search(q, k, ef)
				if err != nil {
					return nil, 0, err
				}
				results[i] = ids
			}
			done += len(queries)
			if time.Since(start) >= 100*time.Millisecond {
				break
			}
		}
		perQuery = append(perQuery, time.Since(start).Seconds()/float64(done))
	}
	sort.Float64s(perQuery)
	return results, 1 / perQuery[len(perQuery)/2], nil
}

// readVectors reads .fvecs (f32 rows) or .bvecs (u8 rows): each row an
// int32 dimension, then its components.
func readVectors(path string) ([][]float32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	byteRows := strings.HasSuffix(path, ".bvecs")
	if !byteRows && !strings.HasSuffix(path, ".fvecs") {
		return nil, fmt.Errorf("%s: expected a .fvecs or .bvecs file", path)
	}
	var rows [][]float32
	for off := 0; off < len(data); {
		if off+4 > len(data) {
			return nil, fmt.Errorf("%s: %w", path, io.ErrUnexpectedEOF)
		}
		dim := int(int32(binary.LittleEndian.Uint32(data[off:])))
		off += 4
		size := dim * 4
		if byteRows {
			size = dim
		}
		if dim <= 0 || off+size > len(data) {
			return nil, fmt.Errorf("%s: bad row at byte %d (dimension %d)", path, off-4, dim)
		}
		row := make([]float32, dim)
		for i := range row {
			if byteRows {
				row[i] = float32(data[off+i])
			} else {
				row[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off+4*i:]))
			}
		}
		off += size
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no vectors", path)
	}
	return rows, nil
}

// readIvecs reads .ivecs: each row an int32 count, then that many int32.
func readIvecs(path string) ([][]int32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rows [][]int32
	for off := 0; off < len(data); {
		if off+4 > len(data) {
			return nil, fmt.Errorf("%s: %w", path, io.ErrUnexpectedEOF)
		}
		n := int(int32(binary.LittleEndian.Uint32(data[off:])))
		off += 4
		if n <= 0 || off+4*n > len(data) {
			return nil, fmt.Errorf("%s: bad row at byte %d (count %d)", path, off-4, n)
		}
		row := make([]int32, n)
		for i := range row {
			row[i] = int32(binary.LittleEndian.Uint32(data[off+4*i:]))
		}
		off += 4 * n
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, nil
}
