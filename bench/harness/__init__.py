"""The measuring side of the benchmark: completion listener, CPU accounting, worker processes."""
