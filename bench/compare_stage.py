"""One stage of bench/compare.py's DVC pipeline, as a DVC stage's command runs it:

python compare_stage.py source OUT.parquet --rows 500000 --seed 0
python compare_stage.py transform IN.parquet OUT.parquet --stage 3 --mult 1.0
"""

from __future__ import annotations

import argparse

import polars as pl
from compare_work import source, transform


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    src = sub.add_parser("source")
    src.add_argument("out")
    src.add_argument("--rows", type=int, required=True)
    src.add_argument("--seed", type=int, default=0)
    tr = sub.add_parser("transform")
    tr.add_argument("input")
    tr.add_argument("out")
    tr.add_argument("--stage", type=int, required=True)
    tr.add_argument("--mult", type=float, default=1.0)
    args = ap.parse_args()
    if args.what == "source":
        df = source(args.rows, args.seed)
    else:
        df = transform(pl.read_parquet(args.input), args.stage, args.mult)
    df.write_parquet(args.out, compression="zstd")


if __name__ == "__main__":
    main()
