"""Tasks: how to read a final answer from a completion and, where the task allows it, how
to check every step. Verifiers choose a task by name; register more with `register`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import arith


@dataclass(frozen=True)
class Task:
    name: str
    parse: Callable[[str], str | None]        # completion -> normalized answer, None if none
    gold: Callable[[str], str]                # gold answer as stored -> normalized answer
    check_steps: Callable[[str, str], bool] | None = None  # (question, completion) -> all right


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def get(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name]


def _digits(answer: str) -> str:
    return answer.strip().lstrip("0") or "0"


register(Task("arithmetic", arith.parse_answer, _digits, arith.check_steps))
