"""Few-shot prompts: each problem's prompt from k exemplars kept in a file, and the same
prompt with the gold answer given as a hint (for rationalization).

Exemplar files are YAML: a list of {question, rationale, answer}, and optionally a
`hint_exemplars` list in the same style. Templates are Python format strings over
{question}, {rationale}, {answer}, {hint}, and {choices} where the problem has them."""

from __future__ import annotations

from typing import Literal

from stardag.operator import Dataset, FilePath, Model, Operator, Params

PROBLEMS = {"id": "string", "question": "string", "answer": "string"}
PROMPTS = {**PROBLEMS, "prompt": "string", "hint_prompt": "string"}


class FewshotPrompt(Operator):
    version = "1"
    inputs = {"problems": Dataset(PROBLEMS), "model": Model(optional=True)}
    outputs = {"prompts": Dataset(PROMPTS, passthrough="problems")}

    class Params(Params):
        exemplars: FilePath | None = None
        k: int = 0
        template: str = "Q: {question}\nA:"
        hint_template: str = "Q: {question} (answer: {hint})\nA:"
        exemplar_template: str = "Q: {question}\nA: {rationale}\n\n"
        hint_exemplar_template: str | None = None
        format: Literal["plain", "chat"] = "plain"
        system: str | None = None

    def run(self, ctx, problems, model=None):
        import polars as pl
        import yaml

        p = ctx.params
        shots = hint_shots = ""
        if p.k:
            if p.exemplars is None:
                raise ValueError("k > 0 needs an `exemplars` file")
            doc = yaml.safe_load(open(p.exemplars))
            plain = doc["exemplars"] if isinstance(doc, dict) else doc
            hinted = doc.get("hint_exemplars", plain) if isinstance(doc, dict) else plain
            if len(plain) < p.k:
                raise ValueError(f"{p.exemplars} has {len(plain)} exemplars, k is {p.k}")
            shots = "".join(p.exemplar_template.format(**e) for e in plain[:p.k])
            hint_fmt = p.hint_exemplar_template or p.exemplar_template
            hint_shots = "".join(hint_fmt.format(hint=e["answer"], **e) for e in hinted[:p.k])
        rows = problems.to_dicts()
        prompts = [shots + p.template.format(**_fields(r)) for r in rows]
        hint_prompts = [hint_shots + p.hint_template.format(hint=r["answer"], **_fields(r))
                        for r in rows]
        if p.format == "chat":
            if model is None:
                raise ValueError("format: chat needs the `model` input (for its chat template)")
            prompts, hint_prompts = _chat(model, p.system, prompts), _chat(model, p.system, hint_prompts)
        return problems.with_columns(pl.Series("prompt", prompts), pl.Series("hint_prompt", hint_prompts))


def _fields(row: dict) -> dict:
    meta = row.get("meta") or {}
    return {**(meta if isinstance(meta, dict) else {}), **row}


def _chat(model_dir, system: str | None, texts: list[str]) -> list[str]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if not tok.chat_template:
        raise ValueError(f"the model at {model_dir} has no chat template; use format: plain")
    head = [{"role": "system", "content": system}] if system else []
    return [tok.apply_chat_template(head + [{"role": "user", "content": t}], tokenize=False,
                                    add_generation_prompt=True) for t in texts]
