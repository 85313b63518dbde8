"""A pretrained causal LM brought into the store as safetensors: a local Hugging Face model
directory, a `.gguf` file (dequantized by transformers once, so later stages load
safetensors in a fraction of a second), or a hub id when online. No remote code unless the
spec asks for it."""

from __future__ import annotations

from typing import Literal

from stardag.operator import DefaultResources, FilePath, Model, Operator, Params


class HFModel(Operator):
    version = "1"
    outputs = {"model": Model()}
    resources = DefaultResources(cpus=1)

    class Params(Params):
        path: FilePath | None = None    # a model directory or a .gguf file, beside the spec
        hub_id: str | None = None       # e.g. "Qwen/Qwen2.5-0.5B-Instruct" (needs a network)
        revision: str | None = None
        dtype: Literal["float32", "bfloat16", "float16"] = "float32"
        trust_remote_code: bool = False

    def run(self, ctx):
        from pathlib import Path

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from . import hf

        hf.quiet()
        p = ctx.params
        if (p.path is None) == (p.hub_id is None):
            raise ValueError("give exactly one of `path` (directory or .gguf file) and `hub_id`")
        kwargs = {"dtype": getattr(torch, p.dtype), "trust_remote_code": p.trust_remote_code}
        if p.path is not None:
            src = Path(p.path)
            if src.suffix == ".gguf":
                try:
                    import gguf  # noqa: F401
                except ImportError:
                    raise ValueError("loading .gguf files needs the `gguf` package: "
                                     "pip install 'stardag[gguf]'") from None
                where, kwargs["gguf_file"] = str(src.parent), src.name
            else:
                where = str(src)
        else:
            where, kwargs["revision"] = p.hub_id, p.revision
        ctx.log(f"loading {where}{' / ' + kwargs['gguf_file'] if 'gguf_file' in kwargs else ''}")
        tok_kwargs = {k: v for k, v in kwargs.items() if k in ("gguf_file", "revision", "trust_remote_code")}
        tok = AutoTokenizer.from_pretrained(where, **tok_kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
        if "gguf_file" in kwargs:
            # a dequantized GGUF model saves as plain weights only without its quantizer
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        hf.save(model, tok, ctx.output_dir("model"))
        n = sum(t.numel() for t in model.parameters())
        ctx.log(f"{n / 1e6:.1f}M parameters saved as safetensors ({p.dtype})")
