"""The runtime: supervision of components with a restart budget, signals and shutdown."""
