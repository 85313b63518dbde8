"""stardag's operator library. Each operator is one module; their short names are entry
points of the `stardag.operators` group (pyproject.toml), as a third-party library's are.

Modules here keep their imports light at module level (torch, transformers and ray are
imported inside `run`), so that planning a cached pipeline never pays for them."""
