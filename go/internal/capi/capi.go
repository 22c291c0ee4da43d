// Package capi wraps swann's C ABI (capi/include/swann.h) once, for the
// public packages n2 and annoyindex.
//
// The static library target/release/libswann_capi.a of the workspace is
// linked in, so it must be built first:
//
//	cargo build --release -p swann-capi
//
// Every wrapper locks the calling goroutine to its OS thread for the call
// and the read of the error message that follows it, because swann keeps
// its last error per thread. Handles carry a finalizer that frees them;
// Free releases one at once.
package capi

/*
#cgo CFLAGS: -I${SRCDIR}/../../../capi/include
#cgo LDFLAGS: ${SRCDIR}/../../../target/release/libswann_capi.a -lm -ldl -lpthread
#include <stdlib.h>
#include "swann.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// Status is a swann status code (SwannStatus).
type Status int

// The status codes of swann.h.
const (
	StatusOK              Status = C.SWANN_STATUS_OK
	StatusInvalidArgument Status = C.SWANN_STATUS_INVALID_ARGUMENT
	StatusNullPointer     Status = C.SWANN_STATUS_NULL_POINTER
	StatusIO              Status = C.SWANN_STATUS_IO
	StatusFormat          Status = C.SWANN_STATUS_FORMAT
	StatusNotFound        Status = C.SWANN_STATUS_NOT_FOUND
	StatusIndexFull       Status = C.SWANN_STATUS_INDEX_FULL
	StatusState           Status = C.SWANN_STATUS_STATE
	StatusPanic           Status = C.SWANN_STATUS_PANIC
	StatusBufferTooSmall  Status = C.SWANN_STATUS_BUFFER_TOO_SMALL
	StatusOther           Status = C.SWANN_STATUS_OTHER
)

// String is the library's name of the status ("invalid argument", ...).
func (s Status) String() string {
	return C.GoString(C.swann_status_name(C.int32_t(s)))
}

// Error is a failed call: the operation, the status and the message.
type Error struct {
	Op     string // the operation that failed, e.g. "save"
	Status Status // why, as a swann status code
	Msg    string // the library's (or the binding's) message
}

func (e *Error) Error() string {
	if e.Op == "" && e.Msg == "" {
		return "swann: " + e.Status.String()
	}
	if e.Msg == "" {
		return fmt.Sprintf("swann: %s: %s", e.Op, e.Status)
	}
	return fmt.Sprintf("swann: %s: %s", e.Op, e.Msg)
}

// Is matches the sentinel errors (ErrNotFound, ...) by status, so that
// errors.Is(err, ErrNotFound) works for any operation.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Msg == "" && t.Status == e.Status
}

// Sentinels for errors.Is, one per failure status.
var (
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument}
	ErrNullPointer     = &Error{Status: StatusNullPointer}
	ErrIO              = &Error{Status: StatusIO}
	ErrFormat          = &Error{Status: StatusFormat}
	ErrNotFound        = &Error{Status: StatusNotFound}
	ErrIndexFull       = &Error{Status: StatusIndexFull}
	ErrState           = &Error{Status: StatusState}
	ErrPanic           = &Error{Status: StatusPanic}
	ErrBufferTooSmall  = &Error{Status: StatusBufferTooSmall}
	ErrOther           = &Error{Status: StatusOther}
)

// Errorf builds an Error raised by the Go side (bad input caught before
// the call, a call in the wrong state).
func Errorf(op string, s Status, format string, args ...interface{}) error {
	return &Error{Op: op, Status: s, Msg: fmt.Sprintf(format, args...)}
}

// IsStatus reports whether err is an *Error with status s.
func IsStatus(err error, s Status) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == s
}

// check turns a status into an error, reading the thread's message. The
// caller holds the OS thread locked since the call that returned st.
func check(op string, st C.enum_SwannStatus) error {
	if st == C.SWANN_STATUS_OK {
		return nil
	}
	return &Error{Op: op, Status: Status(st), Msg: C.GoString(C.swann_last_error_message())}
}

// Version is the library's version string.
func Version() string { return C.GoString(C.swann_version()) }

// WithPanicNextCall runs f with swann's debug hook armed on f's OS
// thread: the first swann call f makes panics inside the library and
// returns StatusPanic. The hook is disarmed afterwards whatever f did.
// For tests: it shows that a panic comes back as an error.
func WithPanicNextCall(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	C.swann_debug_panic_next_call(1)
	defer C.swann_debug_panic_next_call(0)
	f()
}

func cstr(s string) (*C.char, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return nil, errors.New("string holds a NUL byte")
		}
	}
	return C.CString(s), nil
}

func fptr(v []float32) *C.float {
	if len(v) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&v[0]))
}

func uptr(v []uint64) *C.uint64_t {
	if len(v) == 0 {
		return nil
	}
	return (*C.uint64_t)(unsafe.Pointer(&v[0]))
}

func b32(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}

// withPath converts a path for C and runs call with it, locked to the
// thread, returning call's status as an error.
func withPath(op, path string, call func(*C.char) C.enum_SwannStatus) error {
	p, err := cstr(path)
	if err != nil {
		return &Error{Op: op, Status: StatusInvalidArgument, Msg: fmt.Sprintf("path %q: %v", path, err)}
	}
	defer C.free(unsafe.Pointer(p))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(op, call(p))
}
