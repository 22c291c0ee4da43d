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

// Flat is an exact-scan index handle: the reference the approximate
// indexes are checked against.
type Flat struct {
	p   *C.SwannFlat
	dim int
}

// NewFlat creates an empty flat index (metrics as swann_flat_new).
func NewFlat(dim int, metric string) (*Flat, error) {
	if dim <= 0 {
		return nil, Errorf("new", StatusInvalidArgument, "dimension must be positive, got %d", dim)
	}
	m, err := cstr(metric)
	if err != nil {
		return nil, Errorf("new", StatusInvalidArgument, "metric %q: %v", metric, err)
	}
	defer C.free(unsafe.Pointer(m))
	var out *C.SwannFlat
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := check("new", C.swann_flat_new(C.size_t(dim), m, &out)); err != nil {
		return nil, err
	}
	f := &Flat{p: out, dim: dim}
	runtime.SetFinalizer(f, (*Flat).Free)
	return f, nil
}

// Free releases the handle.
func (f *Flat) Free() {
	if f.p != nil {
		C.swann_flat_free(f.p)
		f.p = nil
	}
	runtime.SetFinalizer(f, nil)
}

// AddBatch appends the rows of data under labels.
func (f *Flat) AddBatch(labels []uint64, data []float32) error {
	if len(labels)*f.dim != len(data) {
		return Errorf("add", StatusInvalidArgument, "%d labels need %d floats, got %d", len(labels), len(labels)*f.dim, len(data))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check("add", C.swann_flat_add_batch(f.p, uptr(labels), fptr(data), C.size_t(len(labels)), C.size_t(f.dim)))
	runtime.KeepAlive(f)
	return err
}

// Search writes the exact len(labels) nearest labels to q (distances too
// unless dists is nil) and returns how many it found.
func (f *Flat) Search(q []float32, labels []uint64, dists []float32) (int, error) {
	if len(labels) == 0 {
		return 0, Errorf("search", StatusInvalidArgument, "k must be positive")
	}
	var dp *C.float
	if dists != nil {
		dp = fptr(dists[:len(labels)])
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := check("search", C.swann_flat_search(f.p, fptr(q), C.size_t(len(q)), C.size_t(len(labels)), uptr(labels), dp, &n))
	runtime.KeepAlive(f)
	return int(n), err
}
