"""Side-by-side benchmarks (`make bench`): each prints ratios measured in one run."""
