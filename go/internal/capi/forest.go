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

// Forest is a random-projection forest handle (Annoy's index).
type Forest struct {
	p   *C.SwannForest
	dim int
}

// NewForest creates an empty forest of dim-dimensional items under metric
// ("angular", "euclidean", "manhattan", "hamming" or "dot").
func NewForest(dim int, metric string) (*Forest, error) {
	if dim <= 0 {
		return nil, Errorf("new", StatusInvalidArgument, "dimension must be positive, got %d", dim)
	}
	m, err := cstr(metric)
	if err != nil {
		return nil, Errorf("new", StatusInvalidArgument, "metric %q: %v", metric, err)
	}
	defer C.free(unsafe.Pointer(m))
	var out *C.SwannForest
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check("new", C.swann_forest_new(C.size_t(dim), m, &out)); err != nil {
		return nil, err
	}
	f := &Forest{p: out, dim: dim}
	runtime.SetFinalizer(f, (*Forest).Free)
	return f, nil
}

// Free releases the handle; later calls fail with StatusNullPointer. It
// must not run while another call on the handle runs.
func (f *Forest) Free() {
	if f.p != nil {
		C.swann_forest_free(f.p)
		f.p = nil
	}
	runtime.SetFinalizer(f, nil)
}

// Dim is the item dimension (bits, for hamming).
func (f *Forest) Dim() int { return f.dim }

func (f *Forest) status(op string, call func() C.enum_SwannStatus) error {
	runtime.LockOSThread()
	err := check(op, call())
	runtime.UnlockOSThread()
	runtime.KeepAlive(f)
	return err
}

func (f *Forest) checkDim(op string, v []float32) error {
	if len(v) != f.dim {
		return Errorf(op, StatusInvalidArgument, "vector has %d components, the index %d", len(v), f.dim)
	}
	return nil
}

// AddItem adds (or replaces) item id.
func (f *Forest) AddItem(id uint64, v []float32) error {
	if err := f.checkDim("add item", v); err != nil {
		return err
	}
	return f.status("add item", func() C.enum_SwannStatus {
		return C.swann_forest_add_item(f.p, C.uint64_t(id), fptr(v), C.size_t(len(v)))
	})
}

// Build builds nTrees trees (-1: automatic) on nThreads threads (-1: all
// cores) and returns the number of trees.
func (f *Forest) Build(nTrees, nThreads int) (int, error) {
	var n C.size_t
	err := f.status("build", func() C.enum_SwannStatus {
		return C.swann_forest_build(f.p, C.int64_t(nTrees), C.int32_t(nThreads), &n)
	})
	return int(n), err
}

// Unbuild drops the trees so items can be added again.
func (f *Forest) Unbuild() error {
	return f.status("unbuild", func() C.enum_SwannStatus { return C.swann_forest_unbuild(f.p) })
}

// Save writes the built forest to path.
func (f *Forest) Save(path string) error {
	err := withPath("save", path, func(p *C.char) C.enum_SwannStatus { return C.swann_forest_save(f.p, p) })
	runtime.KeepAlive(f)
	return err
}

// Reload replaces the forest with the file at path (mapped when mmap).
func (f *Forest) Reload(path string, mmap, prefault bool) error {
	err := withPath("load", path, func(p *C.char) C.enum_SwannStatus {
		return C.swann_forest_reload(f.p, p, b32(mmap), b32(prefault))
	})
	runtime.KeepAlive(f)
	return err
}

// Unload drops items and trees and unmaps the file.
func (f *Forest) Unload() error {
	return f.status("unload", func() C.enum_SwannStatus { return C.swann_forest_unload(f.p) })
}

// OnDiskBuild moves the forest into the file at path and builds there.
func (f *Forest) OnDiskBuild(path string) error {
	err := withPath("on disk build", path, func(p *C.char) C.enum_SwannStatus {
		return C.swann_forest_on_disk_build(f.p, p)
	})
	runtime.KeepAlive(f)
	return err
}

// SetSeed sets the seed of the next build.
func (f *Forest) SetSeed(seed uint64) error {
	return f.status("set seed", func() C.enum_SwannStatus { return C.swann_forest_set_seed(f.p, C.uint64_t(seed)) })
}

// SetVerbose turns the build's progress line on stderr on or off.
func (f *Forest) SetVerbose(v bool) error {
	return f.status("verbose", func() C.enum_SwannStatus { return C.swann_forest_set_verbose(f.p, b32(v)) })
}

// NnsByItem writes up to len(ids) nearest items to item id (distances too
// unless dists is nil) and returns how many it found.
func (f *Forest) NnsByItem(id uint64, searchK int, ids []uint64, dists []float32) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var dp *C.float
	if dists != nil {
		dp = fptr(dists[:len(ids)])
	}
	var n C.size_t
	err := f.status("get nns by item", func() C.enum_SwannStatus {
		return C.swann_forest_nns_by_item(f.p, C.uint64_t(id), C.size_t(len(ids)), C.int64_t(searchK), uptr(ids), dp, &n)
	})
	return int(n), err
}

// NnsByVector writes up to len(ids) nearest items to v.
func (f *Forest) NnsByVector(v []float32, searchK int, ids []uint64, dists []float32) (int, error) {
	if err := f.checkDim("get nns by vector", v); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	var dp *C.float
	if dists != nil {
		dp = fptr(dists[:len(ids)])
	}
	var n C.size_t
	err := f.status("get nns by vector", func() C.enum_SwannStatus {
		return C.swann_forest_nns_by_vector(f.p, fptr(v), C.size_t(len(v)), C.size_t(len(ids)), C.int64_t(searchK), uptr(ids), dp, &n)
	})
	return int(n), err
}

// ItemVector copies item id's vector.
func (f *Forest) ItemVector(id uint64) ([]float32, error) {
	out := make([]float32, f.dim)
	err := f.status("get item", func() C.enum_SwannStatus {
		return C.swann_forest_get_item_vector(f.p, C.uint64_t(id), fptr(out), C.size_t(f.dim))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Distance is the distance between items i and j as searches report it.
func (f *Forest) Distance(i, j uint64) (float32, error) {
	var d C.float
	err := f.status("get distance", func() C.enum_SwannStatus {
		return C.swann_forest_get_distance(f.p, C.uint64_t(i), C.uint64_t(j), &d)
	})
	return float32(d), err
}

// NItems is one more than the largest item id added.
func (f *Forest) NItems() (int, error) {
	var n C.size_t
	err := f.status("get n items", func() C.enum_SwannStatus { return C.swann_forest_n_items(f.p, &n) })
	return int(n), err
}

// NTrees is the number of trees (0 before a build).
func (f *Forest) NTrees() (int, error) {
	var n C.size_t
	err := f.status("get n trees", func() C.enum_SwannStatus { return C.swann_forest_n_trees(f.p, &n) })
	return int(n), err
}

// IsBuilt reports whether the forest is built.
func (f *Forest) IsBuilt() (bool, error) {
	var b C.int32_t
	err := f.status("is built", func() C.enum_SwannStatus { return C.swann_forest_is_built(f.p, &b) })
	return b != 0, err
}
