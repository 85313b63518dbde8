"""Few-shot prompts: each problem's prompt from k exemplars kept in a file, and the same
prompt with the gold answer given as a hint (for rationalization).

Exemplar files are YAML: a list of {question, rationale, answer}, and optionally a
`hint_exemplars` list in the same style. Templates are Python format strings over
{question}, {rationale}, {answer}, {hint}, and {choices} where the problem has them."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stardag.operator import Dataset, InputError, Model, Operator, Params, RegularFile

from .arithmetic import PROBLEMS

PROMPTS = {**PROBLEMS, "prompt": "string", "hint_prompt": "string"}


class FewshotPrompt(Operator):
    version = "1"
    inputs = {"problems": Dataset(PROBLEMS), "model": Model(optional=True)}
    outputs = {"prompts": Dataset(PROMPTS, passthrough="problems")}

    class Params(Params):
        exemplars: RegularFile | None = None
        k: int = Field(0, ge=0)
        template: str = "Q: {question}\nA:"
        hint_template: str = "Q: {question} (answer: {hint})\nA:"
        exemplar_template: str = "Q: {question}\nA: {rationale}\n\n"
        hint_exemplar_template: str | None = None
        format: Literal["plain", "chat"] = "plain"
        system: str | None = None

        @field_validator("template", "hint_template", "exemplar_template", "hint_exemplar_template")
        @classmethod
        def _format_string(cls, v):
            if v is not None:
                template_fields(v)
            return v

        @model_validator(mode="after")
        def _exemplars_for_k(self):
            if self.k and self.exemplars is None:
                raise ValueError(f"k: {self.k} needs an `exemplars` file")
            return self

    def run(self, ctx, problems, model=None):
        import polars as pl

        p = ctx.params
        shots = hint_shots = ""
        if p.k:
            hint_fmt = p.hint_exemplar_template or p.exemplar_template
            plain, hinted = read_exemplars(
                p.exemplars,
                p.k,
                template_fields(p.exemplar_template),
                template_fields(hint_fmt) - {"hint"} | {"answer"},
            )
            shots = "".join(p.exemplar_template.format(**e) for e in plain)
            hint_shots = "".join(hint_fmt.format(hint=e["answer"], **e) for e in hinted)
        rows = problems.to_dicts()
        have = set(_fields(rows[0])) if rows else set()
        for name, template, extra in (
            ("template", p.template, set()),
            ("hint_template", p.hint_template, {"hint"}),
        ):
            missing = sorted(template_fields(template) - have - extra) if rows else []
            if missing:
                raise InputError(
                    f"{name} names {{{missing[0]}}}, which the problems do not "
                    f"have (they have {', '.join(sorted(have))})"
                )
        prompts = [shots + p.template.format(**_fields(r)) for r in rows]
        hint_prompts = [
            hint_shots + p.hint_template.format(hint=r["answer"], **_fields(r)) for r in rows
        ]
        if p.format == "chat":
            if model is None:
                raise ValueError("format: chat needs the `model` input (for its chat template)")
            prompts, hint_prompts = (
                _chat(model, p.system, prompts),
                _chat(model, p.system, hint_prompts),
            )
        return problems.with_columns(
            pl.Series("prompt", prompts), pl.Series("hint_prompt", hint_prompts)
        )


def template_fields(template: str) -> set[str]:
    """The names a format string uses ('{question}', '{meta[x]}' -> 'question', 'meta');
    ValueError if it is not a valid format string."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"{template!r:.60} is not a valid template: {e}") from None
    names = set()
    for _, name, _, _ in parsed:
        if name is not None:
            root = name.split(".")[0].split("[")[0]
            if not root or root.isdigit():
                raise ValueError(
                    f"{template!r:.60}: name the fields ({{question}}), "
                    "not by position ({} or {0})"
                )
            names.add(root)
    return names


def read_exemplars(path: str, k: int, plain_fields: set[str], hint_fields: set[str]):
    """The first k plain and hinted exemplars of a YAML exemplar file: a list of mappings,
    or a mapping with `exemplars:` and optionally `hint_exemplars:`. Every error names the
    file and the line."""
    import yaml

    from .datafiles import DataError

    def line(node) -> int:
        return node.start_mark.line + 1

    try:
        with open(path, encoding="utf-8") as f:
            node = yaml.compose(f.read(), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise DataError(f"{path}: lists and mappings nested too deeply") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the exemplar file: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or str(e)
        if getattr(e, "context_mark", None) and getattr(e, "context", None):
            # e.g. "end of stream" for an unclosed quote: the line to fix is where it opened
            problem += f" ({e.context} from line {e.context_mark.line + 1})"
            mark = e.context_mark if "end of stream" in problem else mark
        where = f"{path}:{mark.line + 1}" if mark else path
        raise DataError(f"{where}: invalid YAML: {problem}") from None
    if node is None:
        raise DataError(f"{path}: the exemplar file is empty")
    lists = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value not in ("exemplars", "hint_exemplars"):
                raise DataError(
                    f"{path}:{line(key)}: unknown key {key.value!r} (an exemplar "
                    "file has `exemplars:` and optionally `hint_exemplars:`)"
                )
            lists[key.value] = value
        if "exemplars" not in lists:
            raise DataError(f"{path}:{line(node)}: no `exemplars:` list")
    elif isinstance(node, yaml.SequenceNode):
        lists["exemplars"] = node
    else:
        raise DataError(
            f"{path}:{line(node)}: expected a list of exemplars (or a mapping with `exemplars:`)"
        )
    construct = yaml.SafeLoader("")
    out = {}
    for name, seq in lists.items():
        fields = plain_fields if name == "exemplars" else hint_fields
        if not isinstance(seq, yaml.SequenceNode):
            raise DataError(f"{path}:{line(seq)}: `{name}` must be a list of exemplars")
        if len(seq.value) < k:
            raise DataError(
                f"{path}:{line(seq)}: `{name}` has {len(seq.value)} exemplars, k is {k}"
            )
        items = []
        for i, item in enumerate(seq.value[:k], 1):
            try:
                value = construct.construct_document(item)
            except yaml.YAMLError as e:
                raise DataError(
                    f"{path}:{line(item)}: invalid YAML: {getattr(e, 'problem', None) or e}"
                ) from None
            except ValueError:  # Python reads integers of up to 4300 digits
                raise DataError(
                    f"{path}:{line(item)}: exemplar {i} of `{name}` has a number "
                    "too long to read (more than 4300 digits)"
                ) from None
            if not isinstance(value, dict):
                raise DataError(
                    f"{path}:{line(item)}: exemplar {i} of `{name}` is not a "
                    "mapping of fields (question, rationale, answer)"
                )
            for field in sorted(fields):
                if field not in value:
                    raise DataError(
                        f"{path}:{line(item)}: exemplar {i} of `{name}` has no "
                        f"field {field!r}, which its template uses"
                    )
            key_lines = {
                kn.value: line(kn)
                for kn, _ in getattr(item, "value", ())
                if isinstance(kn, yaml.ScalarNode)
            }
            for key, v in value.items():
                if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                    raise DataError(
                        f"{path}:{key_lines.get(key, line(item))}: exemplar {i} of "
                        f"`{name}`: field {key!r} should be text, not "
                        f"{type(v).__name__}"
                    )
            items.append(value)
        out[name] = items
    return out["exemplars"], out.get("hint_exemplars", out["exemplars"])


def _fields(row: dict) -> dict:
    meta = row.get("meta") or {}
    return {**(meta if isinstance(meta, dict) else {}), **row}


def _chat(model_dir, system: str | None, texts: list[str]) -> list[str]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if not tok.chat_template:
        raise ValueError(f"the model at {model_dir} has no chat template; use format: plain")
    head = [{"role": "system", "content": system}] if system else []
    return [
        tok.apply_chat_template(
            head + [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        for t in texts
    ]
