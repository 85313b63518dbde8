"""A tiny untrained char-level model and a few prompts, for sampling tests."""

import polars as pl

from stardag.operator import Dataset, Model, Operator, Params


class TinyModel(Operator):
    outputs = {"model": Model()}

    def run(self, ctx):
        from operators import charlm, hf

        tok = charlm.make_tokenizer()
        model = charlm.make_model(tok, n_layer=1, n_embd=64, n_head=1, n_positions=64, seed=0)
        hf.save(model, tok, ctx.output_dir("model"))


class Prompts(Operator):
    outputs = {"prompts": Dataset({"id": "string", "prompt": "string"})}

    class Params(Params):
        n: int = 12

    def run(self, ctx):
        n = ctx.params.n
        return pl.DataFrame(
            {"id": [f"p{i}" for i in range(n)], "prompt": [f"{i}+{i * 7 % 10}\n" for i in range(n)]}
        )
