module github.com/swann-ann/swann/go

go 1.19
