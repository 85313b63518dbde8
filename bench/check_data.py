"""Reads every row of the shared GSM8K and CommonsenseQA train files with the project's
loaders and checks that every gold answer parses, and that the parsers read each gold
answer back from a completion written the way the prompts ask for it.

    python bench/check_data.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    from operators.commonsenseqa import csqa_row
    from operators.datafiles import load_problems
    from operators.gsm8k import gsm8k_row
    from operators.tasks import csqa_parse, gsm8k_parse

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    data = Path(ap.parse_args().data)
    t0 = time.perf_counter()
    gsm = load_problems(str(data / "gsm8k" / "train.jsonl"), gsm8k_row)
    csqa = load_problems(str(data / "commonsenseqa" / "train.jsonl"), csqa_row)
    loaded = time.perf_counter() - t0
    gsm_bad = [
        r["id"]
        for r in gsm
        if gsm8k_parse(r["meta"]["rationale"] + "\n#### " + r["answer"]) != r["answer"]
    ]
    csqa_bad = [
        r["id"]
        for r in csqa
        if csqa_parse(f"So the answer is ({r['answer'].lower()}).", r["question"]) != r["answer"]
    ]
    csqa_text = [
        r["id"]
        for r in csqa
        if csqa_parse(f"So the answer is {r['meta']['answer_text']}.", r["question"]) != r["answer"]
    ]
    print(f"gsm8k: {len(gsm)} rows read, {len(gsm) - len(gsm_bad)} gold answers read back")
    print(
        f"commonsenseqa: {len(csqa)} rows read, {len(csqa) - len(csqa_bad)} gold letters read back, "
        f"{len(csqa) - len(csqa_text)} read back from the choice's text"
    )
    print(f"loading both files: {loaded:.2f} s")
    return 1 if gsm_bad or csqa_bad else 0


if __name__ == "__main__":
    sys.exit(main())
