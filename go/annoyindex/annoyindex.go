// Package annoyindex is Annoy's Go API (github.com/spotify/annoy,
// src/annoygomodule.h) on swann's random-projection forest, through
// swann's C ABI. Forest files are Annoy-compatible as swann documents.
//
// Code written for either generation of Annoy's Go binding compiles once
// its import path is changed to this package's: results may be collected
// in slices, as in the original annoyindex package,
//
//	var result []int
//	index.GetNnsByItem(0, 10, -1, &result)
//
// or in the vectors of the later annoy package:
//
//	result := annoyindex.NewAnnoyVectorInt()
//	defer result.Free()
//	index.GetNnsByVector(v, 10, -1, result)
//	ids := result.ToSlice()
//
// Annoy's methods report failure as Annoy does (Save, Load and
// OnDiskBuild return false, the others return nothing) and never print;
// LastError tells what the latest of them ran into. The methods ending in
// Err, NnsByItem, NnsByVector, Item and Distance return errors instead,
// of type *Error: compare them with errors.Is against ErrInvalidArgument,
// ErrNotFound, ErrState, ...
//
// The package links target/release/libswann_capi.a of the swann
// workspace: build it with `cargo build --release -p swann-capi` first.
package annoyindex

import (
	"fmt"
	"math"
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

// AnnoyIndex is a forest with Annoy's methods and error-returning
// variants of them. Its methods may be called from several goroutines at
// once (adds and builds wait for running searches); LastError is then
// only meaningful for a caller that knows no other call ran in between,
// so concurrent code should use the variants.
type AnnoyIndex interface {
	// AddItem adds item (ids are dense: adding i makes room for 0..i).
	AddItem(item int, w []float32)
	// Build(nTrees[, nJobs]) builds nTrees trees (-1: as many as it takes
	// for the trees' nodes to number at least the items) on nJobs threads
	// (default 1, as Annoy's Go binding; -1: every core).
	Build(nTrees int, nJobs ...int)
	// Save(filename string[, prefault bool]) writes the forest to
	// filename and maps that file in its place, as Annoy does; false on
	// failure.
	Save(a ...interface{}) bool
	// Load(filename string[, prefault bool]) maps a forest file (of the
	// index's dimension and metric) in place of the index; false on
	// failure.
	Load(a ...interface{}) bool
	// Unload drops the items and trees and unmaps the file.
	Unload()
	// GetDistance is the distance between items i and j (NaN on failure).
	GetDistance(i, j int) float32
	// GetNnsByItem(item, n, searchK int, result[, distances]) stores the
	// n nearest items to item, itself first. result is a *[]int or an
	// AnnoyVectorInt, distances a *[]float32 or an AnnoyVectorFloat;
	// searchK -1 means n * the number of trees.
	GetNnsByItem(a ...interface{})
	// GetNnsByVector(w []float32, n, searchK int, result[, distances])
	// is GetNnsByItem from vector w.
	GetNnsByVector(a ...interface{})
	// GetNItems is one more than the largest item id added.
	GetNItems() int
	// GetNTrees is the number of trees (0 before Build).
	GetNTrees() int
	// Verbose makes Build print one line to stderr.
	Verbose(v bool)
	// GetItem stores item's vector in v (a *[]float32 or an
	// AnnoyVectorFloat).
	GetItem(item int, v interface{})
	// OnDiskBuild makes the index build in the file filename (call it
	// before adding items); false on failure.
	OnDiskBuild(filename string) bool
	// SetSeed sets the seed of the next Build.
	SetSeed(seed uint64)

	// LastError is the error of the latest Annoy-style call on the index,
	// or nil if it succeeded.
	LastError() error
	// AddItemErr is AddItem returning its error.
	AddItemErr(item int, w []float32) error
	// BuildErr is Build returning its error.
	BuildErr(nTrees, nJobs int) error
	// SaveErr is Save returning its error.
	SaveErr(filename string, prefault bool) error
	// LoadErr is Load returning its error.
	LoadErr(filename string, prefault bool) error
	// UnloadErr is Unload returning its error.
	UnloadErr() error
	// OnDiskBuildErr is OnDiskBuild returning its error.
	OnDiskBuildErr(filename string) error
	// NnsByItem is GetNnsByItem returning ids, distances and error.
	NnsByItem(item, n, searchK int) ([]int, []float32, error)
	// NnsByVector is GetNnsByVector returning ids, distances and error.
	NnsByVector(w []float32, n, searchK int) ([]int, []float32, error)
	// Item is GetItem returning the vector and error.
	Item(item int) ([]float32, error)
	// Distance is GetDistance returning its error.
	Distance(i, j int) (float32, error)
	// Dim is the dimension f (bits, for Hamming).
	Dim() int
	// Metric is the metric's name: "angular", "euclidean", "manhattan",
	// "hamming" or "dot".
	Metric() string
	// Free releases the index's memory now (the Delete functions). The
	// index must not be used afterwards; a finalizer frees it otherwise.
	Free()
}

// The types of Annoy's constructors, one per metric: all AnnoyIndex.
type (
	AnnoyIndexAngular    = AnnoyIndex
	AnnoyIndexEuclidean  = AnnoyIndex
	AnnoyIndexManhattan  = AnnoyIndex
	AnnoyIndexHamming    = AnnoyIndex
	AnnoyIndexDotProduct = AnnoyIndex
)

// NewAnnoyIndexAngular returns an index of f-dimensional vectors under
// the angular distance sqrt(2 - 2 cos).
func NewAnnoyIndexAngular(f int) AnnoyIndexAngular { return newIndex(f, "angular") }

// NewAnnoyIndexEuclidean returns an index under the Euclidean distance.
func NewAnnoyIndexEuclidean(f int) AnnoyIndexEuclidean { return newIndex(f, "euclidean") }

// NewAnnoyIndexManhattan returns an index under the Manhattan distance.
func NewAnnoyIndexManhattan(f int) AnnoyIndexManhattan { return newIndex(f, "manhattan") }

// NewAnnoyIndexHamming returns an index of f-bit vectors (given as one
// float per bit, set when above 0.5) under the Hamming distance.
func NewAnnoyIndexHamming(f int) AnnoyIndexHamming { return newIndex(f, "hamming") }

// NewAnnoyIndexDotProduct returns an index ranked by the dot product
// (reported as the distance; larger is nearer).
func NewAnnoyIndexDotProduct(f int) AnnoyIndexDotProduct { return newIndex(f, "dot") }

// New returns an index of f-dimensional vectors under metric ("angular",
// "euclidean", "manhattan", "hamming" or "dot"), or the error why not.
func New(f int, metric string) (AnnoyIndex, error) {
	h, err := capi.NewForest(f, metric)
	if err != nil {
		return nil, err
	}
	return &index{h: h, dim: f, metric: metric}, nil
}

// newIndex is New for the Annoy-shaped constructors: an invalid f gives
// an index whose every call fails with that error (see LastError).
func newIndex(f int, metric string) AnnoyIndex {
	x, err := New(f, metric)
	if err != nil {
		return &index{broken: err, last: err, dim: f, metric: metric}
	}
	return x
}

// DeleteAnnoyIndexAngular releases an index.
func DeleteAnnoyIndexAngular(x AnnoyIndexAngular) { del(x) }

// DeleteAnnoyIndexEuclidean releases an index.
func DeleteAnnoyIndexEuclidean(x AnnoyIndexEuclidean) { del(x) }

// DeleteAnnoyIndexManhattan releases an index.
func DeleteAnnoyIndexManhattan(x AnnoyIndexManhattan) { del(x) }

// DeleteAnnoyIndexHamming releases an index.
func DeleteAnnoyIndexHamming(x AnnoyIndexHamming) { del(x) }

// DeleteAnnoyIndexDotProduct releases an index.
func DeleteAnnoyIndexDotProduct(x AnnoyIndexDotProduct) { del(x) }

func del(x AnnoyIndex) {
	if x != nil {
		x.Free()
	}
}

type index struct {
	// mu is held shared by every call and alone by Free: the forest
	// handle has its own lock for everything else.
	mu     sync.RWMutex
	h      *capi.Forest // nil once freed
	dim    int
	metric string
	broken error // construction error: every call fails with it

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

func (x *index) Dim() int       { return x.dim }
func (x *index) Metric() string { return x.metric }

func (x *index) Free() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.h != nil {
		x.h.Free()
		x.h = nil
	}
}

// with runs f on the handle under the shared lock.
func (x *index) with(op string, f func(h *capi.Forest) error) error {
	if x.broken != nil {
		return x.broken
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.h == nil {
		return capi.Errorf(op, capi.StatusState, "the index was deleted")
	}
	return f(x.h)
}

func itemID(op string, item int) (uint64, error) {
	if item < 0 {
		return 0, capi.Errorf(op, capi.StatusInvalidArgument, "item id must not be negative, got %d", item)
	}
	return uint64(item), nil
}

// --- building ---------------------------------------------------------

func (x *index) AddItem(item int, w []float32) { x.AddItemErr(item, w) }

func (x *index) AddItemErr(item int, w []float32) error {
	return x.setLast(x.with("add item", func(h *capi.Forest) error {
		id, err := itemID("add item", item)
		if err != nil {
			return err
		}
		return h.AddItem(id, w)
	}))
}

func (x *index) Build(nTrees int, nJobs ...int) {
	jobs := 1
	switch len(nJobs) {
	case 0:
	case 1:
		jobs = nJobs[0]
	default:
		x.setLast(capi.Errorf("build", capi.StatusInvalidArgument, "Build takes (nTrees[, nJobs]), got %d job counts", len(nJobs)))
		return
	}
	x.BuildErr(nTrees, jobs)
}

func (x *index) BuildErr(nTrees, nJobs int) error {
	return x.setLast(x.with("build", func(h *capi.Forest) error {
		_, err := h.Build(nTrees, nJobs)
		return err
	}))
}

func (x *index) OnDiskBuild(filename string) bool { return x.OnDiskBuildErr(filename) == nil }

func (x *index) OnDiskBuildErr(filename string) error {
	return x.setLast(x.with("on disk build", func(h *capi.Forest) error { return h.OnDiskBuild(filename) }))
}

func (x *index) SetSeed(seed uint64) {
	x.setLast(x.with("set seed", func(h *capi.Forest) error { return h.SetSeed(seed) }))
}

func (x *index) Verbose(v bool) {
	x.setLast(x.with("verbose", func(h *capi.Forest) error { return h.SetVerbose(v) }))
}

// --- files --------------------------------------------------------------

// fileArgs checks (filename string[, prefault bool]).
func fileArgs(name string, a []interface{}) (string, bool) {
	prefault := true
	switch len(a) {
	case 1:
	case 2:
		b, ok := a[1].(bool)
		if !ok {
			panic(fmt.Sprintf("annoyindex: %s: prefault must be a bool, got %T", name, a[1]))
		}
		prefault = b
	default:
		panic(fmt.Sprintf("annoyindex: %s takes (filename string[, prefault bool]), got %d arguments", name, len(a)))
	}
	s, ok := a[0].(string)
	if !ok {
		panic(fmt.Sprintf("annoyindex: %s: filename must be a string, got %T", name, a[0]))
	}
	return s, prefault
}

func (x *index) Save(a ...interface{}) bool {
	name, prefault := fileArgs("Save", a)
	return x.SaveErr(name, prefault) == nil
}

func (x *index) SaveErr(filename string, prefault bool) error {
	return x.setLast(x.with("save", func(h *capi.Forest) error {
		if err := h.Save(filename); err != nil {
			return err
		}
		return h.Reload(filename, true, prefault)
	}))
}

func (x *index) Load(a ...interface{}) bool {
	name, prefault := fileArgs("Load", a)
	return x.LoadErr(name, prefault) == nil
}

func (x *index) LoadErr(filename string, prefault bool) error {
	return x.setLast(x.with("load", func(h *capi.Forest) error { return h.Reload(filename, true, prefault) }))
}

func (x *index) Unload() { x.UnloadErr() }

func (x *index) UnloadErr() error {
	return x.setLast(x.with("unload", func(h *capi.Forest) error { return h.Unload() }))
}

// --- queries ------------------------------------------------------------

func (x *index) GetNItems() int {
	var n int
	x.setLast(x.with("get n items", func(h *capi.Forest) (err error) {
		n, err = h.NItems()
		return
	}))
	return n
}

func (x *index) GetNTrees() int {
	var n int
	x.setLast(x.with("get n trees", func(h *capi.Forest) (err error) {
		n, err = h.NTrees()
		return
	}))
	return n
}

func (x *index) Distance(i, j int) (float32, error) {
	var d float32
	err := x.setLast(x.with("get distance", func(h *capi.Forest) error {
		a, err := itemID("get distance", i)
		if err != nil {
			return err
		}
		b, err := itemID("get distance", j)
		if err != nil {
			return err
		}
		d, err = h.Distance(a, b)
		return err
	}))
	if err != nil {
		return float32(math.NaN()), err
	}
	return d, nil
}

func (x *index) GetDistance(i, j int) float32 {
	d, _ := x.Distance(i, j)
	return d
}

func (x *index) Item(item int) ([]float32, error) {
	var v []float32
	err := x.setLast(x.with("get item", func(h *capi.Forest) error {
		id, err := itemID("get item", item)
		if err != nil {
			return err
		}
		v, err = h.ItemVector(id)
		return err
	}))
	return v, err
}

func (x *index) GetItem(item int, v interface{}) {
	switch out := v.(type) {
	case *[]float32:
		if out == nil {
			panic("annoyindex: GetItem: nil *[]float32")
		}
		*out, _ = x.Item(item)
	case AnnoyVectorFloat:
		r, _ := x.Item(item)
		out.fill(r)
	default:
		panic(fmt.Sprintf("annoyindex: GetItem stores into a *[]float32 or an AnnoyVectorFloat, got %T", v))
	}
}

func (x *index) nns(op string, n int, run func(h *capi.Forest, ids []uint64, dists []float32) (int, error)) ([]int, []float32, error) {
	if n < 0 {
		return nil, nil, x.setLast(capi.Errorf(op, capi.StatusInvalidArgument, "n must not be negative, got %d", n))
	}
	labels := make([]uint64, n)
	dists := make([]float32, n)
	var found int
	err := x.setLast(x.with(op, func(h *capi.Forest) (err error) {
		found, err = run(h, labels, dists)
		return
	}))
	if err != nil {
		return nil, nil, err
	}
	ids := make([]int, found)
	for i := range ids {
		ids[i] = int(labels[i])
	}
	return ids, dists[:found], nil
}

func (x *index) NnsByItem(item, n, searchK int) ([]int, []float32, error) {
	return x.nns("get nns by item", n, func(h *capi.Forest, ids []uint64, dists []float32) (int, error) {
		id, err := itemID("get nns by item", item)
		if err != nil {
			return 0, err
		}
		return h.NnsByItem(id, searchK, ids, dists)
	})
}

func (x *index) NnsByVector(w []float32, n, searchK int) ([]int, []float32, error) {
	return x.nns("get nns by vector", n, func(h *capi.Forest, ids []uint64, dists []float32) (int, error) {
		return h.NnsByVector(w, searchK, ids, dists)
	})
}

// storeResults writes ids and distances into the out-arguments of
// GetNnsByItem and GetNnsByVector.
func storeResults(name string, a []interface{}, ids []int, dists []float32) {
	switch out := a[3].(type) {
	case *[]int:
		if out == nil {
			panic("annoyindex: " + name + ": nil *[]int")
		}
		*out = ids
	case AnnoyVectorInt:
		r := make([]int32, len(ids))
		for i, id := range ids {
			r[i] = int32(id)
		}
		out.fill(r)
	default:
		panic(fmt.Sprintf("annoyindex: %s stores ids into a *[]int or an AnnoyVectorInt, got %T", name, a[3]))
	}
	if len(a) == 5 {
		switch out := a[4].(type) {
		case *[]float32:
			if out == nil {
				panic("annoyindex: " + name + ": nil *[]float32")
			}
			*out = dists
		case AnnoyVectorFloat:
			out.fill(dists)
		default:
			panic(fmt.Sprintf("annoyindex: %s stores distances into a *[]float32 or an AnnoyVectorFloat, got %T", name, a[4]))
		}
	}
}

// nnsArgs checks the (n, searchK int, result[, distances]) that follow
// the item or vector.
func nnsArgs(name string, a []interface{}) (n, searchK int) {
	if len(a) != 4 && len(a) != 5 {
		panic(fmt.Sprintf("annoyindex: %s takes 4 or 5 arguments, got %d", name, len(a)))
	}
	var ok bool
	if n, ok = a[1].(int); !ok {
		panic(fmt.Sprintf("annoyindex: %s: n must be an int, got %T", name, a[1]))
	}
	if searchK, ok = a[2].(int); !ok {
		panic(fmt.Sprintf("annoyindex: %s: search_k must be an int, got %T", name, a[2]))
	}
	return
}

func (x *index) GetNnsByItem(a ...interface{}) {
	n, searchK := nnsArgs("GetNnsByItem", a)
	item, ok := a[0].(int)
	if !ok {
		panic(fmt.Sprintf("annoyindex: GetNnsByItem: item must be an int, got %T", a[0]))
	}
	ids, dists, _ := x.NnsByItem(item, n, searchK)
	storeResults("GetNnsByItem", a, ids, dists)
}

func (x *index) GetNnsByVector(a ...interface{}) {
	n, searchK := nnsArgs("GetNnsByVector", a)
	w, ok := a[0].([]float32)
	if !ok {
		panic(fmt.Sprintf("annoyindex: GetNnsByVector: the vector must be a []float32, got %T", a[0]))
	}
	ids, dists, _ := x.NnsByVector(w, n, searchK)
	storeResults("GetNnsByVector", a, ids, dists)
}
