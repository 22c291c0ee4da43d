package annoyindex_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/swann-ann/swann/go/annoyindex"
)

// Annoy's own test/test.tree (kept as tests/data/annoy/old_split_first.tree)
// loads, and item 0's neighbours are the ones Annoy's tests pin.
func TestAnnoyFileBinaryCompatibility(t *testing.T) {
	index := annoyindex.NewAnnoyIndexAngular(10)
	defer annoyindex.DeleteAnnoyIndexAngular(index)
	if !index.Load("../../tests/data/annoy/old_split_first.tree") {
		t.Fatalf("Load: %v", index.LastError())
	}
	var result []int
	index.GetNnsByItem(0, 10, -1, &result)
	want := []int{0, 85, 42, 11, 54, 38, 53, 66, 19, 31}
	if !reflect.DeepEqual(result, want) {
		t.Fatalf("GetNnsByItem(0, 10) = %v, want %v", result, want)
	}
}

// A file written by Annoy 1.17.3 answers as Annoy did (exhaustive search_k,
// tests/data/annoy/angular.json), is read-only until unloaded, and saves
// as itself.
func TestAnnoyFileIsReadOnlyAndSavesAsItself(t *testing.T) {
	path := "../../tests/data/annoy/angular.ann"
	index, err := annoyindex.New(16, "angular")
	if err != nil {
		t.Fatal(err)
	}
	defer index.Free()
	if err := index.LoadErr(path, false); err != nil {
		t.Fatal(err)
	}
	if n := index.GetNItems(); n != 600 {
		t.Fatalf("GetNItems = %d", n)
	}
	ids, _, err := index.NnsByItem(7, 10, 19200)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{7, 570, 136, 219, 268, 238, 232, 332, 497, 340}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("NnsByItem(7) = %v, want %v", ids, want)
	}
	if err := index.AddItemErr(0, make([]float32, 16)); !errors.Is(err, annoyindex.ErrState) {
		t.Fatalf("AddItemErr on an Annoy file: %v", err)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.ann")
	if err := index.SaveErr(copyPath, false); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(copyPath)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the saved copy differs from the Annoy file")
	}
	if err := index.UnloadErr(); err != nil {
		t.Fatal(err)
	}
	if err := index.AddItemErr(0, make([]float32, 16)); err != nil {
		t.Fatalf("AddItemErr after Unload: %v", err)
	}
}
