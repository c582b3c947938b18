"""Framework-free prediction core: bundles, registry, parsing and prediction."""
