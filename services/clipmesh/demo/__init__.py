"""The offline demo: procedural, deterministic media that `make demo`, tests and benchmarks use."""
