"""Run infrastructure: run directories that cache units of work, provenance, training configs."""
