"""stardag: declarative dataflow pipelines on Ray over a content-addressed artifact store."""

__version__ = "0.1.0"
__all__ = ["run", "plan", "read", "load"]


def __getattr__(name):
    # Lazy, so that `import stardag.operator` (what operators do) stays light.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
