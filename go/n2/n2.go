// Package n2 is N2's Go API (github.com/kakao/n2, bindings/go) on swann's
// HNSW index, through swann's C ABI.
//
// Code written for N2's Go binding compiles unchanged once its import
// path is changed to this package's:
//
//	index := n2.NewHnswIndex(3, "L2")
//	index.AddData([]float32{0, 0, 1})
//	index.AddData([]float32{0, 1, 0})
//	index.Build(5, 10, 4, 10, 3.5, "heuristic", "skip")
//	var ids []int
//	var dists []float32
//	index.SearchByVector([]float32{1, 2, 3}, 3, -1, &ids, &dists)
//	n2.DeleteHnswIndex(index)
//
// Metrics, and the distances searches report, are N2's: "angular"
// (1 - cos), "L2" (squared Euclidean; "euclidean" is accepted too) and
// "dot" (the dot product, larger is nearer). AddData queues vectors under
// ids 0, 1, 2, ... until Build indexes them.
//
// N2's methods report failure as N2 does (SaveModel and LoadModel return
// false, the others return nothing) and never print; LastError tells what
// the latest of them on the index ran into. The methods ending in Err,
// Search and SearchID return errors instead, of type *Error: compare them
// with errors.Is against ErrInvalidArgument, ErrNotFound, ErrState, ...
//
// The package links target/release/libswann_capi.a of the swann
// workspace: build it with `cargo build --release -p swann-capi` first.
package n2

import (
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/swann-ann/swann/go/internal/capi"
)

// Error is a failed call: the operation, a status and a message.
type Error = capi.Error

// Status is the status code of an Error.
type Status = capi.Status

// Sentinel errors to compare with errors.Is, one per status.
var (
	ErrInvalidArgument = capi.ErrInvalidArgument
	ErrNullPointer     = capi.ErrNullPointer
	ErrIO              = capi.ErrIO
	ErrFormat          = capi.ErrFormat
	ErrNotFound        = capi.ErrNotFound
	ErrIndexFull       = capi.ErrIndexFull
	ErrState           = capi.ErrState
	ErrPanic           = capi.ErrPanic
	ErrOther           = capi.ErrOther
)

// N2's build defaults, used for arguments of Build that are not positive
// (strings: empty).
const (
	DefaultM              = 12
	DefaultEfConstruction = 150
	DefaultNThreads       = 1
)

// HnswIndex is an HNSW index with N2's methods and error-returning
// variants of them. Its methods may be called from several goroutines at
// once; LastError is then only meaningful for the caller that knows no
// other call ran in between, so concurrent code should use the variants.
type HnswIndex interface {
	// Build indexes the vectors added so far (N2's Index.Build). M is the
	// number of links per node on upper levels (default 12), maxM0 on
	// level 0 (default 2*M), mult the level multiplier (default 1/ln M),
	// neighborSelecting "heuristic" (default), "naive" or
	// "heuristic_save_remains", graphMerging "skip" (default) or
	// "merge_level0" (accepted, builds the same graph as "skip").
	// Non-positive numbers and empty strings mean the defaults.
	Build(m, maxM0, efConstruction, nThreads int, mult float32, neighborSelecting, graphMerging string)
	// SaveModel writes the built index to fname; false on failure.
	SaveModel(fname string) bool
	// LoadModel(fname string[, useMmap bool]) reads an index file,
	// memory-mapped unless useMmap is false; false on failure.
	LoadModel(a ...interface{}) bool
	// UnloadModel drops the index, and vectors not built yet.
	UnloadModel()
	// AddData queues v under the next id.
	AddData(v []float32)
	// SearchByVector(v []float32, k, efSearch int, ids *[]int[,
	// distances *[]float32]) stores the k nearest ids to v, nearest
	// first; efSearch -1 means 50*k.
	SearchByVector(a ...interface{})
	// SearchById(id, k, efSearch int, ids *[]int[, distances
	// *[]float32]) is SearchByVector from item id's vector; the search
	// starts at the item, which is always among the results.
	SearchById(a ...interface{})
	// PrintDegreeDist prints the number of items (swann's C ABI does not
	// expose the graph's degrees).
	PrintDegreeDist()
	// PrintConfigs prints the index's parameters, one key=value a line.
	PrintConfigs()

	// LastError is the error of the latest N2-style call on the index
	// (Build, SaveModel, LoadModel, UnloadModel, AddData, SearchByVector,
	// SearchById, PrintDegreeDist, PrintConfigs), or nil if it succeeded.
	LastError() error
	// AddDataErr is AddData returning its error.
	AddDataErr(v []float32) error
	// BuildErr is Build returning its error.
	BuildErr(m, maxM0, efConstruction, nThreads int, mult float32, neighborSelecting, graphMerging string) error
	// SaveModelErr is SaveModel returning its error.
	SaveModelErr(fname string) error
	// LoadModelErr is LoadModel returning its error.
	LoadModelErr(fname string, useMmap bool) error
	// Search is SearchByVector returning ids, distances and error.
	Search(v []float32, k, efSearch int) ([]int, []float32, error)
	// SearchID is SearchById returning ids, distances and error.
	SearchID(id, k, efSearch int) ([]int, []float32, error)
	// Configs is the text PrintConfigs prints.
	Configs() (string, error)
	// Dim is the vector dimension (0 until LoadModel for an index made
	// with dimension 0).
	Dim() int
	// Metric is N2's name of the metric: "angular", "L2" or "dot".
	Metric() string
	// NumItems is the number of items, built or queued.
	NumItems() int
	// Free releases the index's memory now (DeleteHnswIndex). The index
	// must not be used afterwards; a finalizer frees it otherwise.
	Free()
}

// NewHnswIndex(dim int[, metric string]) returns a new index (N2's
// HnswIndex(dim, metric); metric defaults to "angular"). Arguments of
// other types panic, as N2's binding does. An unknown metric or a
// negative dimension gives an index whose every call fails with that
// error (see LastError); NewHnswIndexErr returns it instead.
func NewHnswIndex(a ...interface{}) HnswIndex {
	var metric = "angular"
	switch len(a) {
	case 1:
	case 2:
		m, ok := a[1].(string)
		if !ok {
			panic(fmt.Sprintf("n2.NewHnswIndex: metric must be a string, got %T", a[1]))
		}
		metric = m
	default:
		panic(fmt.Sprintf("n2.NewHnswIndex: takes (dim int[, metric string]), got %d arguments", len(a)))
	}
	dim, ok := a[0].(int)
	if !ok {
		panic(fmt.Sprintf("n2.NewHnswIndex: dim must be an int, got %T", a[0]))
	}
	h, err := NewHnswIndexErr(dim, metric)
	if err != nil {
		return &index{broken: err, last: err, n2metric: metric, dim: dim}
	}
	return h
}

// NewHnswIndexErr is NewHnswIndex returning an error for an unknown
// metric or a negative dimension. Dimension 0 makes an index for
// LoadModel, which takes the file's dimension.
func NewHnswIndexErr(dim int, metric string) (HnswIndex, error) {
	name, native, ok := parseMetric(metric)
	if !ok {
		return nil, capi.Errorf("new", capi.StatusInvalidArgument,
			"[Error] Invalid configuration value for DistanceMethod: %q (expected \"angular\", \"L2\" or \"dot\")", metric)
	}
	if dim < 0 {
		return nil, capi.Errorf("new", capi.StatusInvalidArgument, "dimension must not be negative, got %d", dim)
	}
	return &index{dim: dim, n2metric: name, native: native}, nil
}

// DeleteHnswIndex releases an index (N2's DeleteHnswIndex).
func DeleteHnswIndex(h HnswIndex) {
	if h != nil {
		h.Free()
	}
}

func parseMetric(m string) (n2name, native string, ok bool) {
	switch strings.ToLower(m) {
	case "angular":
		return "angular", "cosine", true
	case "l2", "euclidean":
		return "L2", "l2", true
	case "dot":
		return "dot", "dot", true
	}
	return "", "", false
}

// n2Metric maps a file's swann metric to N2's name.
func n2Metric(native string) string {
	switch native {
	case "cosine":
		return "angular"
	case "l2":
		return "L2"
	default: // "dot", and "ip" which reports the same distance
		return "dot"
	}
}

type index struct {
	// mu guards everything below; searches hold it shared, changes alone.
	mu       sync.RWMutex
	dim      int
	n2metric string
	native   string
	h        *capi.Hnsw // nil until Build or LoadModel
	built    int        // items in h
	pending  []float32  // queued rows, dim floats each
	loaded   bool       // h came from a file: no more AddData
	params   capi.HnswParams
	broken   error // construction error: every call fails with it

	errMu sync.Mutex
	last  error
}

func (x *index) setLast(err error) error {
	x.errMu.Lock()
	x.last = err
	x.errMu.Unlock()
	return err
}

func (x *index) LastError() error {
	x.errMu.Lock()
	defer x.errMu.Unlock()
	return x.last
}

func (x *index) Dim() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.dim
}

func (x *index) Metric() string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.n2metric
}

func (x *index) NumItems() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.dim == 0 {
		return x.built
	}
	return x.built + len(x.pending)/x.dim
}

func (x *index) Free() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.h != nil {
		x.h.Free()
		x.h = nil
	}
	x.pending = nil
	x.built = 0
	x.loaded = false
}

// --- building ---------------------------------------------------------

func (x *index) AddData(v []float32) { x.setLast(x.addData(v)) }

func (x *index) AddDataErr(v []float32) error { return x.setLast(x.addData(v)) }

func (x *index) addData(v []float32) error {
	if x.broken != nil {
		return x.broken
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loaded {
		return capi.Errorf("add data", capi.StatusState,
			"[Error] This index already has a trained model. Adding an item is not allowed.")
	}
	if x.dim == 0 || len(v) != x.dim {
		return capi.Errorf("add data", capi.StatusInvalidArgument,
			"[Error] Invalid dimension data inserted: %d, Predefined dimension: %d", len(v), x.dim)
	}
	for i, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return capi.Errorf("add data", capi.StatusInvalidArgument, "component %d is %v", i, f)
		}
	}
	x.pending = append(x.pending, v...)
	return nil
}

func (x *index) Build(m, maxM0, efConstruction, nThreads int, mult float32, neighborSelecting, graphMerging string) {
	x.setLast(x.build(m, maxM0, efConstruction, nThreads, mult, neighborSelecting, graphMerging))
}

func (x *index) BuildErr(m, maxM0, efConstruction, nThreads int, mult float32, neighborSelecting, graphMerging string) error {
	return x.setLast(x.build(m, maxM0, efConstruction, nThreads, mult, neighborSelecting, graphMerging))
}

func (x *index) build(m, maxM0, efConstruction, nThreads int, mult float32, neighborSelecting, graphMerging string) error {
	if x.broken != nil {
		return x.broken
	}
	p := capi.DefaultHnswParams()
	switch neighborSelecting {
	case "", "heuristic":
		p.Selection = capi.SelectionHeuristic
	case "naive":
		p.Selection = capi.SelectionSimple
	case "heuristic_save_remains":
		p.Selection = capi.SelectionHeuristicKeepPruned
	default:
		return capi.Errorf("build", capi.StatusInvalidArgument,
			"[Error] Invalid configuration value for NeighborSelecting: %q (expected \"heuristic\", \"naive\" or \"heuristic_save_remains\")", neighborSelecting)
	}
	switch graphMerging {
	case "", "skip":
		p.GraphMerging = capi.GraphMergingSkip
	case "merge_level0":
		p.GraphMerging = capi.GraphMergingMergeLevel0
	default:
		return capi.Errorf("build", capi.StatusInvalidArgument,
			"[Error] Invalid configuration value for GraphMerging: %q (expected \"skip\" or \"merge_level0\")", graphMerging)
	}
	if math.IsNaN(float64(mult)) || math.IsInf(float64(mult), 0) {
		return capi.Errorf("build", capi.StatusInvalidArgument, "mult must be a finite number, got %v", mult)
	}
	if m <= 0 {
		m = DefaultM
	}
	if maxM0 <= 0 {
		maxM0 = 2 * m
	}
	if efConstruction <= 0 {
		efConstruction = DefaultEfConstruction
	}
	if nThreads <= 0 {
		nThreads = DefaultNThreads
	}
	if mult > 0 {
		p.LevelMult = float64(mult)
	}
	p.M, p.M0, p.EfConstruction = m, maxM0, efConstruction

	x.mu.Lock()
	defer x.mu.Unlock()
	if x.loaded {
		return capi.Errorf("build", capi.StatusState,
			"[Error] This index already has a trained model. Building an index is not allowed.")
	}
	n := 0
	if x.dim > 0 {
		n = len(x.pending) / x.dim
	}
	if x.h == nil {
		if n == 0 {
			return capi.Errorf("build", capi.StatusState, "[Error] No data to fit. Load data first.")
		}
		p.Dim, p.Metric, p.Capacity = x.dim, x.native, n
		h, err := capi.NewHnsw(p)
		if err != nil {
			return err
		}
		x.h, x.params = h, p
	}
	if n == 0 {
		return nil
	}
	labels := make([]uint64, n)
	for i := range labels {
		labels[i] = uint64(x.built + i)
	}
	if err := x.h.AddBatch(labels, x.pending, nThreads); err != nil {
		return err
	}
	x.built += n
	x.pending = nil
	return nil
}

// --- files --------------------------------------------------------------

func (x *index) SaveModel(fname string) bool { return x.setLast(x.save(fname)) == nil }

func (x *index) SaveModelErr(fname string) error { return x.setLast(x.save(fname)) }

func (x *index) save(fname string) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, err := x.searchable("save model")
	if err != nil {
		return err
	}
	return h.Save(fname)
}

func (x *index) LoadModel(a ...interface{}) bool {
	mmap := true
	switch len(a) {
	case 1:
	case 2:
		b, ok := a[1].(bool)
		if !ok {
			panic(fmt.Sprintf("n2: LoadModel: use_mmap must be a bool, got %T", a[1]))
		}
		mmap = b
	default:
		panic(fmt.Sprintf("n2: LoadModel takes (fname string[, useMmap bool]), got %d arguments", len(a)))
	}
	fname, ok := a[0].(string)
	if !ok {
		panic(fmt.Sprintf("n2: LoadModel: fname must be a string, got %T", a[0]))
	}
	return x.setLast(x.load(fname, mmap)) == nil
}

func (x *index) LoadModelErr(fname string, useMmap bool) error {
	return x.setLast(x.load(fname, useMmap))
}

func (x *index) load(fname string, mmap bool) error {
	if x.broken != nil {
		return x.broken
	}
	h, err := capi.LoadHnsw(fname, mmap, false)
	if err != nil {
		return err
	}
	native, err := h.Metric()
	if err != nil {
		h.Free()
		return err
	}
	count, err := h.Count()
	if err != nil {
		h.Free()
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dim > 0 && x.dim != h.Dim() {
		h.Free()
		return capi.Errorf("load model", capi.StatusInvalidArgument,
			"[Error] index dimension(%d) != model dimension(%d) in %s", x.dim, h.Dim(), fname)
	}
	if x.h != nil {
		x.h.Free()
	}
	x.h, x.dim, x.native, x.n2metric = h, h.Dim(), native, n2Metric(native)
	x.built, x.pending, x.loaded = count, nil, true
	return nil
}

func (x *index) UnloadModel() {
	if x.broken != nil {
		x.setLast(x.broken)
		return
	}
	x.Free()
	x.setLast(nil)
}

// --- searching ----------------------------------------------------------

// searchable is the handle to search; x.mu is held.
func (x *index) searchable(op string) (*capi.Hnsw, error) {
	if x.broken != nil {
		return nil, x.broken
	}
	if x.h == nil {
		return nil, capi.Errorf(op, capi.StatusState, "the index is not built: call Build or LoadModel first")
	}
	return x.h, nil
}

func (x *index) results(op string, k, efSearch int, run func(h *capi.Hnsw, ef int, labels []uint64, dists []float32) (int, error)) ([]int, []float32, error) {
	if k <= 0 {
		return nil, nil, capi.Errorf(op, capi.StatusInvalidArgument, "k must be positive, got %d", k)
	}
	if efSearch < 0 {
		efSearch = 50 * k
	}
	labels := make([]uint64, k)
	dists := make([]float32, k)
	x.mu.RLock()
	h, err := x.searchable(op)
	var n int
	if err == nil {
		n, err = run(h, efSearch, labels, dists)
	}
	score := x.native == "dot" || x.native == "ip"
	x.mu.RUnlock()
	if err != nil {
		return nil, nil, err
	}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = int(labels[i])
	}
	dists = dists[:n]
	if score {
		for i := range dists {
			dists[i] = 1 - dists[i]
		}
	}
	return ids, dists, nil
}

func (x *index) Search(v []float32, k, efSearch int) ([]int, []float32, error) {
	ids, d, err := x.search(v, k, efSearch)
	x.setLast(err)
	return ids, d, err
}

func (x *index) search(v []float32, k, efSearch int) ([]int, []float32, error) {
	return x.results("search by vector", k, efSearch, func(h *capi.Hnsw, ef int, labels []uint64, dists []float32) (int, error) {
		if len(v) != h.Dim() {
			return 0, capi.Errorf("search by vector", capi.StatusInvalidArgument,
				"query has %d components, the index %d", len(v), h.Dim())
		}
		return h.Search(v, ef, labels, dists)
	})
}

func (x *index) SearchID(id, k, efSearch int) ([]int, []float32, error) {
	ids, d, err := x.searchID(id, k, efSearch)
	x.setLast(err)
	return ids, d, err
}

func (x *index) searchID(id, k, efSearch int) ([]int, []float32, error) {
	return x.results("search by id", k, efSearch, func(h *capi.Hnsw, ef int, labels []uint64, dists []float32) (int, error) {
		if id < 0 {
			return 0, capi.Errorf("search by id", capi.StatusInvalidArgument, "item id must not be negative, got %d", id)
		}
		return h.SearchByLabel(uint64(id), ef, labels, dists)
	})
}

// outArgs checks the trailing (k, efSearch int, ids *[]int[, dists
// *[]float32]) of SearchByVector and SearchById.
func outArgs(name string, a []interface{}) (k, ef int, ids *[]int, dists *[]float32) {
	if len(a) != 4 && len(a) != 5 {
		panic(fmt.Sprintf("n2: %s takes 4 or 5 arguments, got %d", name, len(a)))
	}
	var ok bool
	if k, ok = a[1].(int); !ok {
		panic(fmt.Sprintf("n2: %s: k must be an int, got %T", name, a[1]))
	}
	if ef, ok = a[2].(int); !ok {
		panic(fmt.Sprintf("n2: %s: ef_search must be an int, got %T", name, a[2]))
	}
	if ids, ok = a[3].(*[]int); !ok || ids == nil {
		panic(fmt.Sprintf("n2: %s: ids must be a non-nil *[]int, got %T", name, a[3]))
	}
	if len(a) == 5 {
		if dists, ok = a[4].(*[]float32); !ok || dists == nil {
			panic(fmt.Sprintf("n2: %s: distances must be a non-nil *[]float32, got %T", name, a[4]))
		}
	}
	return
}

func (x *index) SearchByVector(a ...interface{}) {
	k, ef, out, outD := outArgs("SearchByVector", a)
	v, ok := a[0].([]float32)
	if !ok {
		panic(fmt.Sprintf("n2: SearchByVector: the query must be a []float32, got %T", a[0]))
	}
	ids, d, _ := x.Search(v, k, ef)
	*out = ids
	if outD != nil {
		*outD = d
	}
}

func (x *index) SearchById(a ...interface{}) {
	k, ef, out, outD := outArgs("SearchById", a)
	id, ok := a[0].(int)
	if !ok {
		panic(fmt.Sprintf("n2: SearchById: the id must be an int, got %T", a[0]))
	}
	ids, d, _ := x.SearchID(id, k, ef)
	*out = ids
	if outD != nil {
		*outD = d
	}
}

// --- reporting ----------------------------------------------------------

func (x *index) Configs() (string, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, err := x.searchable("print configs")
	if err != nil {
		return "", err
	}
	text, err := h.Config()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("n2_metric=%s\n%s", x.n2metric, strings.TrimRight(text, "\n")), nil
}

func (x *index) PrintConfigs() {
	text, err := x.Configs()
	if x.setLast(err) == nil {
		fmt.Fprintln(os.Stdout, text)
	}
}

func (x *index) PrintDegreeDist() {
	x.mu.RLock()
	_, err := x.searchable("print degree dist")
	n := x.built
	x.mu.RUnlock()
	if x.setLast(err) == nil {
		fmt.Fprintf(os.Stdout, "%d items (the level-0 degree distribution is not available)\n", n)
	}
}
