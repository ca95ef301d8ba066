"""Is a backend right: the float64 oracle, the cross-check against it, test data, the contract suite."""
