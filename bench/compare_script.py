"""bench/compare.py's pipeline as one plain script: every stage, every time, no caching.
Each stage writes its Parquet file and the next one reads it back, as in the other two.

    python compare_script.py params.json OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
from compare_work import source, transform


def main():
    params = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    source(params["rows"], params["seed"]).write_parquet(out / "s0.parquet", compression="zstd")
    for i, mult in enumerate(params["mult"], start=1):
        df = transform(pl.read_parquet(out / f"s{i - 1}.parquet"), i, mult)
        df.write_parquet(out / f"s{i}.parquet", compression="zstd")


if __name__ == "__main__":
    main()
