"""HTTP adapters: one Flask blueprint per protocol, each a thin layer over ``core``."""
