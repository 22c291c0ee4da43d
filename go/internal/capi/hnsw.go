package capi

/*
#include <stdlib.h>
#include "swann.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Neighbour selection policies (SwannHnswParams.selection).
const (
	SelectionHeuristic           = C.SWANN_SELECTION_HEURISTIC
	SelectionSimple              = C.SWANN_SELECTION_SIMPLE
	SelectionHeuristicKeepPruned = C.SWANN_SELECTION_HEURISTIC_KEEP_PRUNED
)

// Graph merging values (SwannHnswParams.graph_merging).
const (
	GraphMergingSkip        = C.SWANN_GRAPH_MERGING_SKIP
	GraphMergingMergeLevel0 = C.SWANN_GRAPH_MERGING_MERGE_LEVEL0
)

// HnswParams are the parameters of a new HNSW index; zero values of M0,
// LevelMult mean the library's defaults (2*M, 1/ln M).
type HnswParams struct {
	Dim            int
	Metric         string // "l2", "ip", "cosine" or "dot"
	M              int
	M0             int
	EfConstruction int
	Capacity       int
	Seed           uint64
	LevelMult      float64
	Selection      int
	GraphMerging   int
}

// DefaultHnswParams returns the library's defaults (Dim is 0).
func DefaultHnswParams() HnswParams {
	var p C.SwannHnswParams
	C.swann_hnsw_params_init(&p)
	return HnswParams{
		Dim:            int(p.dim),
		Metric:         "l2",
		M:              int(p.m),
		M0:             int(p.m0),
		EfConstruction: int(p.ef_construction),
		Capacity:       int(p.capacity),
		Seed:           uint64(p.seed),
		LevelMult:      float64(p.level_mult),
		Selection:      int(p.selection),
		GraphMerging:   int(p.graph_merging),
	}
}

// Hnsw is an HNSW index handle.
type Hnsw struct {
	p   *C.SwannHnsw
	dim int
}

func newHnsw(p *C.SwannHnsw) *Hnsw {
	h := &Hnsw{p: p}
	var d C.size_t
	C.swann_hnsw_dim(p, &d)
	h.dim = int(d)
	runtime.SetFinalizer(h, (*Hnsw).Free)
	return h
}

// NewHnsw creates an empty index.
func NewHnsw(params HnswParams) (*Hnsw, error) {
	if params.Dim <= 0 || params.M < 0 || params.M0 < 0 || params.EfConstruction < 0 || params.Capacity < 0 {
		return nil, Errorf("new", StatusInvalidArgument,
			"dimension must be positive and sizes non-negative (dim %d, M %d, M0 %d, ef_construction %d, capacity %d)",
			params.Dim, params.M, params.M0, params.EfConstruction, params.Capacity)
	}
	metric, err := cstr(params.Metric)
	if err != nil {
		return nil, Errorf("new", StatusInvalidArgument, "metric %q: %v", params.Metric, err)
	}
	defer C.free(unsafe.Pointer(metric))
	var p C.SwannHnswParams
	C.swann_hnsw_params_init(&p)
	p.dim = C.size_t(params.Dim)
	p.metric = metric
	p.m = C.size_t(params.M)
	p.m0 = C.size_t(params.M0)
	p.ef_construction = C.size_t(params.EfConstruction)
	p.capacity = C.size_t(params.Capacity)
	p.seed = C.uint64_t(params.Seed)
	p.level_mult = C.double(params.LevelMult)
	p.selection = C.int32_t(params.Selection)
	p.graph_merging = C.int32_t(params.GraphMerging)
	var out *C.SwannHnsw
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check("new", C.swann_hnsw_new(&p, &out)); err != nil {
		return nil, err
	}
	return newHnsw(out), nil
}

// LoadHnsw reads an index file into memory (mmap false) or maps it.
func LoadHnsw(path string, mmap, prefault bool) (*Hnsw, error) {
	var out *C.SwannHnsw
	err := withPath("load", path, func(p *C.char) C.enum_SwannStatus {
		if mmap {
			return C.swann_hnsw_open_mmap(p, b32(prefault), &out)
		}
		return C.swann_hnsw_load(p, &out)
	})
	if err != nil {
		return nil, err
	}
	return newHnsw(out), nil
}

// Free releases the handle; later calls fail with StatusNullPointer. It
// must not run while another call on the handle runs.
func (h *Hnsw) Free() {
	if h.p != nil {
		C.swann_hnsw_free(h.p)
		h.p = nil
	}
	runtime.SetFinalizer(h, nil)
}

// Dim is the vector dimension.
func (h *Hnsw) Dim() int { return h.dim }

// Save writes the index to path atomically.
func (h *Hnsw) Save(path string) error {
	err := withPath("save", path, func(p *C.char) C.enum_SwannStatus {
		return C.swann_hnsw_save(h.p, p)
	})
	runtime.KeepAlive(h)
	return err
}

// AddBatch adds the rows of data (len(labels) rows of Dim floats).
func (h *Hnsw) AddBatch(labels []uint64, data []float32, threads int) error {
	if len(labels)*h.dim != len(data) {
		return Errorf("add", StatusInvalidArgument, "%d labels need %d floats, got %d", len(labels), len(labels)*h.dim, len(data))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check("add", C.swann_hnsw_add_batch(h.p, uptr(labels), fptr(data), C.size_t(len(labels)), C.size_t(h.dim), C.int32_t(threads)))
	runtime.KeepAlive(h)
	return err
}

// Search writes up to len(labels) nearest labels to q (and their
// distances unless dists is nil) and returns how many it found.
func (h *Hnsw) Search(q []float32, ef int, labels []uint64, dists []float32) (int, error) {
	if len(labels) == 0 {
		return 0, Errorf("search", StatusInvalidArgument, "k must be positive")
	}
	var dp *C.float
	if dists != nil {
		dp = fptr(dists[:len(labels)])
	}
	var n C.size_t
	runtime.LockOSThread()
	st := C.swann_hnsw_search(h.p, fptr(q), C.size_t(len(q)), C.size_t(len(labels)), C.int64_t(ef), uptr(labels), dp, &n)
	err := check("search", st)
	runtime.UnlockOSThread()
	runtime.KeepAlive(h)
	return int(n), err
}

// SearchByLabel is Search starting from the stored vector of label.
func (h *Hnsw) SearchByLabel(label uint64, ef int, labels []uint64, dists []float32) (int, error) {
	if len(labels) == 0 {
		return 0, Errorf("search", StatusInvalidArgument, "k must be positive")
	}
	var dp *C.float
	if dists != nil {
		dp = fptr(dists[:len(labels)])
	}
	var n C.size_t
	runtime.LockOSThread()
	st := C.swann_hnsw_search_by_label(h.p, C.uint64_t(label), C.size_t(len(labels)), C.int64_t(ef), uptr(labels), dp, &n)
	err := check("search by id", st)
	runtime.UnlockOSThread()
	runtime.KeepAlive(h)
	return int(n), err
}

// Count is the number of labels held.
func (h *Hnsw) Count() (int, error) {
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check("count", C.swann_hnsw_count(h.p, &n))
	runtime.KeepAlive(h)
	return int(n), err
}

// Metric is the index's metric name ("l2", "ip", "cosine", "dot").
func (h *Hnsw) Metric() (string, error) {
	var s *C.char
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check("metric", C.swann_hnsw_metric(h.p, &s)); err != nil {
		return "", err
	}
	runtime.KeepAlive(h)
	return C.GoString(s), nil
}

// Vector copies the stored vector of label.
func (h *Hnsw) Vector(label uint64) ([]float32, error) {
	out := make([]float32, h.dim)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check("get vector", C.swann_hnsw_get_vector(h.p, C.uint64_t(label), fptr(out), C.size_t(h.dim)))
	runtime.KeepAlive(h)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Config is the index's configuration as key=value lines.
func (h *Hnsw) Config() (string, error) {
	buf := make([]byte, 1024)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		var need C.size_t
		st := C.swann_hnsw_config(h.p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &need)
		if st == C.SWANN_STATUS_BUFFER_TOO_SMALL && int(need) > len(buf) {
			buf = make([]byte, int(need))
			continue
		}
		runtime.KeepAlive(h)
		if err := check("config", st); err != nil {
			return "", err
		}
		return C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), nil
	}
}
