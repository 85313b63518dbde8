"""stardag's operator library. Each operator is one module; this map gives their short names.

Modules here keep their imports light at module level (torch, transformers and ray are
imported inside `run`), so that planning a cached pipeline never pays for them."""

BUILTIN = {
}
