module goro.invalid/benches/compare

go 1.19
