"""xcompile: cross-compile-ready Docker base images (a foreign base + a static qemu)."""

__version__ = "0.1.0"
