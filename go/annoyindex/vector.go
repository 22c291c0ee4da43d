package annoyindex

// AnnoyVectorInt holds the ids a search stored (the later Annoy binding's
// out-parameter type). Its contents are replaced by each call that is
// given it.
type AnnoyVectorInt interface {
	// ToSlice returns a copy of the ids.
	ToSlice() []int32
	// Copy copies the ids into *in, reusing its array when large enough.
	Copy(in *[]int32)
	// InnerArray is the vector's own array: valid until the vector is
	// filled again or freed.
	InnerArray() []int32
	// Len is the number of ids.
	Len() int
	// Get is id i, or 0 when i is out of range.
	Get(i int) int32
	// Free empties the vector.
	Free()
	fill([]int32)
}

// AnnoyVectorFloat holds the distances a search stored, or an item's
// vector.
type AnnoyVectorFloat interface {
	// ToSlice returns a copy of the values.
	ToSlice() []float32
	// Copy copies the values into *in, reusing its array when large
	// enough.
	Copy(in *[]float32)
	// InnerArray is the vector's own array: valid until the vector is
	// filled again or freed.
	InnerArray() []float32
	// Len is the number of values.
	Len() int
	// Get is value i, or 0 when i is out of range.
	Get(i int) float32
	// Free empties the vector.
	Free()
	fill([]float32)
}

// NewAnnoyVectorInt returns an empty id vector.
func NewAnnoyVectorInt() AnnoyVectorInt { return &vec[int32]{} }

// NewAnnoyVectorFloat returns an empty float vector.
func NewAnnoyVectorFloat() AnnoyVectorFloat { return &vec[float32]{} }

type vec[T int32 | float32] struct{ v []T }

func (p *vec[T]) fill(v []T)      { p.v = v }
func (p *vec[T]) InnerArray() []T { return p.v[:len(p.v):len(p.v)] }
func (p *vec[T]) Len() int        { return len(p.v) }
func (p *vec[T]) Free()           { p.v = nil }
func (p *vec[T]) ToSlice() []T    { return append(make([]T, 0, len(p.v)), p.v...) }
func (p *vec[T]) Get(i int) (z T) {
	if i < 0 || i >= len(p.v) {
		return z
	}
	return p.v[i]
}

func (p *vec[T]) Copy(in *[]T) {
	out := *in
	if cap(out) >= len(p.v) {
		out = out[:len(p.v)]
	} else {
		out = make([]T, len(p.v))
	}
	copy(out, p.v)
	*in = out
}
