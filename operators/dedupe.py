"""Training examples from verified samples: correct ones only, exact and normalized-text
duplicates removed, at most k kept per problem; generated ones preferred over rationalized.
With `hinted_copies`, each rationalized example kept is also kept as the model wrote it, with
its hint (source "hinted"). With `prompt_template`, every example is trained on the question
alone ("Q: {question}\nA:"), not on the few-shot prompt it was sampled from."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from stardag.operator import Dataset, Operator, Params

from .hint_rationalize import RATIONALIZED
from .verify import VERIFIED

EXAMPLES = {
    "id": "string",
    "question": "string",
    "answer": "string",
    "prompt": "string",
    "completion": "string",
    "source": "string",
}


class Dedupe(Operator):
    version = "3"
    inputs = {
        "generated": Dataset(VERIFIED),
        "rationalized": Dataset(RATIONALIZED, optional=True),
    }
    outputs = {"examples": Dataset(EXAMPLES)}

    class Params(Params):
        max_per_problem: int = 1
        normalize: bool = True
        # also train on each rationalized example as written, hint in its prompt and in its
        # lines: a model that cannot read a hint in context (the small arithmetic model)
        # keeps the skill rationalization needs only if it is trained; not counted toward
        # max_per_problem, nor as a rationalized example
        hinted_copies: bool = False
        # the prompt each example is trained on, a format string over its `question`: the
        # few-shot exemplars a prompt was sampled with are most of its tokens (about 3 of 4
        # for a 3-shot prompt), so training on the question alone is that much cheaper;
        # the rationale trained on is the same
        prompt_template: str | None = None

        @field_validator("prompt_template")
        @classmethod
        def _question_only(cls, v):
            from .fewshot_prompt import template_fields

            if v is not None and template_fields(v) - {"question"}:
                raise ValueError(f"{v!r:.60}: a prompt_template can use only {{question}}")
            return v

        @model_validator(mode="after")
        def _not_with_hinted_copies(self):
            if self.prompt_template is not None and self.hinted_copies:
                raise ValueError(
                    "prompt_template rewrites the prompts that hinted_copies keeps with their "
                    "hint: use one of them"
                )
            return self

    def run(self, ctx, generated, rationalized=None):
        import polars as pl

        cols = ["id", "question", "answer", "prompt", "completion"]
        parts = [
            generated.filter(pl.col("correct"))
            .select(cols)
            .with_columns(pl.lit("generation").alias("source"))
        ]
        if rationalized is not None:
            parts.append(
                rationalized.filter(pl.col("correct"))
                .select(cols)
                .with_columns(pl.lit("rationalization").alias("source"))
            )
        examples = pl.concat(parts, how="vertical_relaxed").with_row_index("_order")
        text = pl.col("completion")
        if ctx.params.normalize:
            text = text.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
        out = (
            examples.with_columns(text.alias("_norm"))
            .unique(subset=["id", "_norm"], keep="first", maintain_order=True)
            .filter(pl.int_range(pl.len()).over("id") < ctx.params.max_per_problem)
            .sort("_order")
            .drop("_order", "_norm")
        )
        if ctx.params.hinted_copies and rationalized is not None:
            kept = out.filter(pl.col("source") == "rationalization").select("id", "completion")
            copies = (
                rationalized.filter(pl.col("correct"))
                .join(kept, on=["id", "completion"])
                .unique(subset=["id", "completion"], keep="first", maintain_order=True)
                .select(
                    "id",
                    "question",
                    "answer",
                    pl.col("hint_prompt").alias("prompt"),
                    pl.col("hinted_completion").alias("completion"),
                    pl.lit("hinted").alias("source"),
                )
            )
            out = pl.concat([out, copies], how="vertical_relaxed")
        if ctx.params.prompt_template is not None:
            template = ctx.params.prompt_template
            out = out.with_columns(
                pl.col("question")
                .map_elements(lambda q: template.format(question=q), return_dtype=pl.Utf8)
                .alias("prompt")
            )
        ctx.log(
            f"{out.height} examples ({(out['source'] == 'generation').sum()} generated, "
            f"{(out['source'] == 'rationalization').sum()} rationalized"
            + (
                f", {(out['source'] == 'hinted').sum()} hinted copies"
                if ctx.params.hinted_copies
                else ""
            )
            + ")"
        )
        return out
