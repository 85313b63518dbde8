"""A tiny untrained char-level model and a few prompts, for sampling tests."""

import polars as pl

from stardag.operator import Dataset, Model, Operator, Params


class TinyModel(Operator):
    outputs = {"model": Model()}

    def run(self, ctx):
        from operators import hf_common, tiny_gpt

        tok = tiny_gpt.make_tokenizer()
        model = tiny_gpt.make_model(tok, n_layer=1, n_embd=64, n_head=1, n_positions=64, seed=0)
        hf_common.save(model, tok, ctx.output_dir("model"))


class Prompts(Operator):
    outputs = {"prompts": Dataset({"id": "string", "prompt": "string"})}

    class Params(Params):
        n: int = 12

    def run(self, ctx):
        n = ctx.params.n
        return pl.DataFrame(
            {"id": [f"p{i}" for i in range(n)], "prompt": [f"{i}+{i * 7 % 10}\n" for i in range(n)]}
        )
