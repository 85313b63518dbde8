"""A pretrained causal LM brought into the store as safetensors: a local Hugging Face model
directory, a `.gguf` file (dequantized by transformers once, so later stages load
safetensors in a fraction of a second), or a hub id when online. No remote code unless the
spec asks for it, and weights are read from safetensors or GGUF only, never from pickles
(PyTorch `.bin` files)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator

from stardag.operator import DefaultResources, FilePath, InputError, Model, Operator, Params

GGUF_MAGIC = b"GGUF"


def check_model_path(src: Path):
    """A `path` must be a GGUF file or a Hugging Face model directory with safetensors
    weights: anything else is the user's to fix (InputError), found before loading."""
    if src.is_dir():
        from .hf_common import require_safetensors

        if not (src / "config.json").is_file():
            raise InputError(f"{src}: not a Hugging Face model directory (no config.json)")
        require_safetensors(src)
    elif src.suffix == ".gguf":
        with open(src, "rb") as f:
            head = f.read(4)
        if head != GGUF_MAGIC:
            raise InputError(
                f"{src}: not a GGUF file (it starts with {head!r}, not {GGUF_MAGIC!r})"
            )
    else:
        raise InputError(f"{src}: a model `path` is a model directory or a .gguf file")


class HFModel(Operator):
    version = "1"
    outputs = {"model": Model()}
    resources = DefaultResources(cpus=1)

    class Params(Params):
        path: FilePath | None = None  # a model directory or a .gguf file, beside the spec
        hub_id: str | None = None  # e.g. "Qwen/Qwen2.5-0.5B-Instruct" (needs a network)
        revision: str | None = None
        dtype: Literal["float32", "bfloat16", "float16"] = "float32"
        trust_remote_code: bool = False

        @model_validator(mode="after")
        def _one_source(self):
            if (self.path is None) == (self.hub_id is None):
                raise ValueError(
                    "give exactly one of `path` (a model directory or a .gguf file) and `hub_id`"
                )
            return self

    def run(self, ctx):
        from . import hf_common

        p = ctx.params
        if p.path is not None:
            check_model_path(Path(p.path))  # before torch is imported: a bad path fails fast

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        hf_common.quiet()
        kwargs = {"dtype": getattr(torch, p.dtype), "trust_remote_code": p.trust_remote_code}
        if p.path is not None:
            src = Path(p.path)
            if src.suffix == ".gguf":
                try:
                    import gguf  # noqa: F401
                except ImportError:
                    raise ValueError(
                        "loading .gguf files needs the `gguf` package: pip install 'stardag[gguf]'"
                    ) from None
                where, kwargs["gguf_file"] = str(src.parent), src.name
            else:
                where, kwargs["use_safetensors"] = str(src), True
        else:
            where, kwargs["revision"], kwargs["use_safetensors"] = p.hub_id, p.revision, True
        ctx.log(f"loading {where}{' / ' + kwargs['gguf_file'] if 'gguf_file' in kwargs else ''}")
        tok_kwargs = {
            k: v for k, v in kwargs.items() if k in ("gguf_file", "revision", "trust_remote_code")
        }
        tok = AutoTokenizer.from_pretrained(where, **tok_kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
        if "gguf_file" in kwargs:
            # a dequantized GGUF model saves as plain weights only without its quantizer
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        hf_common.save(model, tok, ctx.output_dir("model"))
        n = sum(t.numel() for t in model.parameters())
        ctx.log(f"{n / 1e6:.1f}M parameters saved as safetensors ({p.dtype})")
