"""stardag against DVC and against a plain script, on one pipeline doing the same work three
ways: a source table, then a chain of transforms, each reading the previous stage's Parquet
file, doing some polars work on every row (compare_work.py) and writing Parquet.

1. stardag: a spec of `compare_ops` operators, `stardag run` (the in-process executor, and
   the default Ray executor);
2. DVC: a dvc.yaml whose stages run `python compare_stage.py ...`, params in params.yaml,
   `dvc repro`;
3. a plain script (compare_script.py) running every stage, every time.

Each is timed as whole processes (wall time of the command, median of --repeat runs, the
three interleaved so that a noisy neighbour hits them alike) in three situations: the first
run in a fresh directory, a fully cached re-run, and a re-run after changing one param of
the middle stage (a new value every time, so no cache can answer it).

DVC is not a dependency of stardag: install it into a virtual environment of its own and
name its executable with --dvc (default: `dvc` on PATH, else /tmp/dvcenv/bin/dvc):

    python3 -m venv /tmp/dvcenv && /tmp/dvcenv/bin/pip install dvc
    python bench/compare.py [--stages 12] [--rows 500000] [--repeat 3] [--no-ray]
                            [--json out.json] [--docs docs/benchmarks.md]
    python bench/compare.py --from-json out.json --docs docs/benchmarks.md   # no measuring

--docs rewrites the section "stardag vs DVC vs a plain script" of that file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).parent
FILES = ["compare_work.py", "compare_ops.py", "compare_stage.py", "compare_script.py"]
SECTION = "## stardag vs DVC vs a plain script"


def find_dvc(given: str | None) -> str:
    for candidate in [given] if given else [shutil.which("dvc"), "/tmp/dvcenv/bin/dvc"]:
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit(
        "no dvc executable found: install it apart from stardag with\n"
        "  python3 -m venv /tmp/dvcenv && /tmp/dvcenv/bin/pip install dvc\n"
        "and pass --dvc /tmp/dvcenv/bin/dvc"
    )


def wall(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    """Seconds the command took, and its stdout+stderr."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{out.stdout}\n{out.stderr}")
    return dt, out.stdout + out.stderr


class Pipeline:
    """One of the three ways, in its own fresh directory."""

    name = ""

    def __init__(self, root: Path, stages: int, rows: int, env: dict):
        self.root, self.stages, self.rows, self.env = root, stages, rows, env
        self.mult = [1.0] * stages  # of the transforms s1..sN
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        for f in FILES:
            shutil.copy(HERE / f, root / f)
        self.setup()

    def setup(self):
        pass

    def set_mult(self, stage: int, value: float):
        self.mult[stage - 1] = value
        self.write_params()

    def write_params(self):
        pass

    def run(self) -> tuple[float, int]:
        """(wall seconds, stages computed)."""
        raise NotImplementedError


class Stardag(Pipeline):
    def __init__(self, *args, executor: str):
        self.executor = executor
        self.name = f"stardag ({'in-process executor' if executor == 'local' else 'Ray'})"
        super().__init__(*args)

    def setup(self):
        self.write_params()

    def write_params(self):
        lines = [
            "name: compare",
            "stages:",
            "  s0:",
            "    op: compare_ops:Source",
            f"    params: {{rows: {self.rows}, seed: 0}}",
        ]
        for i, mult in enumerate(self.mult, start=1):
            lines += [
                f"  s{i}:",
                "    op: compare_ops:Transform",
                f"    inputs: {{table: s{i - 1}}}",
                f"    params: {{stage: {i}, mult: {mult!r}}}",
            ]
        (self.root / "compare.yaml").write_text("\n".join(lines) + "\n")

    def run(self):
        cmd = [sys.executable, "-m", "stardag.cli", "run", "compare.yaml"]
        cmd += ["--executor", self.executor]
        dt, out = wall(cmd, self.root, self.env)
        m = re.search(r"compare: (\d+) stages, (\d+) computed", out)
        if not m:
            raise RuntimeError(f"unexpected output of stardag run:\n{out}")
        return dt, int(m.group(2))


class DVC(Pipeline):
    def __init__(self, *args, dvc: str):
        self.dvc = dvc
        self.name = "DVC"
        super().__init__(*args)

    def setup(self):
        py = sys.executable
        stages = {
            "s0": {
                "cmd": f"{py} compare_stage.py source s0.parquet --rows {self.rows} --seed 0",
                "deps": ["compare_stage.py", "compare_work.py"],
                "outs": ["s0.parquet"],
            }
        }
        for i in range(1, self.stages + 1):
            stages[f"s{i}"] = {
                "cmd": f"{py} compare_stage.py transform s{i - 1}.parquet s{i}.parquet "
                f"--stage {i} --mult ${{s{i}.mult}}",
                "deps": [f"s{i - 1}.parquet", "compare_stage.py", "compare_work.py"],
                "params": [f"s{i}.mult"],
                "outs": [f"s{i}.parquet"],
            }
        # JSON is YAML: dvc.yaml written without a YAML library
        (self.root / "dvc.yaml").write_text(json.dumps({"stages": stages}, indent=1))
        self.write_params()
        wall([self.dvc, "init", "--no-scm", "-q"], self.root, self.env)
        wall([self.dvc, "config", "core.analytics", "false"], self.root, self.env)

    def write_params(self):
        params = {f"s{i}": {"mult": m} for i, m in enumerate(self.mult, start=1)}
        (self.root / "params.yaml").write_text(json.dumps(params, indent=1))

    def run(self):
        dt, out = wall([self.dvc, "repro"], self.root, self.env)
        return dt, out.count("Running stage")


class Script(Pipeline):
    name = "plain script"

    def setup(self):
        self.write_params()

    def write_params(self):
        params = {"rows": self.rows, "seed": 0, "mult": self.mult}
        (self.root / "params.json").write_text(json.dumps(params))

    def run(self):
        cmd = [sys.executable, "compare_script.py", "params.json", "out"]
        dt, _ = wall(cmd, self.root, self.env)
        return dt, self.stages + 1


def machine(dvc: str) -> dict:
    import polars
    import pyarrow

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dvc_version = subprocess.run([dvc, "--version"], check=False, capture_output=True, text=True)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "dvc": dvc_version.stdout.strip().splitlines()[-1],
        "polars": polars.__version__,
        "pyarrow": pyarrow.__version__,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def measure(args, dvc: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="stardag-compare-"))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
        "DVC_NO_ANALYTICS": "1",
        "POLARS_MAX_THREADS": str(os.cpu_count()),
    }
    n, middle = args.stages, args.stages // 2 + 1
    makers = {"stardag-local": lambda r: Stardag(r, n, args.rows, env, executor="local")}
    if args.ray:
        makers["stardag-ray"] = lambda r: Stardag(r, n, args.rows, env, executor="ray")
    makers["dvc"] = lambda r: DVC(r, n, args.rows, env, dvc=dvc)
    makers["script"] = lambda r: Script(r, n, args.rows, env)
    times: dict[str, dict[str, list[float]]] = {k: {} for k in makers}
    names = {}
    expect = {"first": n + 1, "cached": 0, "partial": n - middle + 1}
    try:
        for rep in range(args.repeat):
            for key, make in makers.items():
                p = make(work / key)
                names[key] = p.name
                runs = {}
                runs["first"] = p.run()
                runs["cached"] = p.run()
                p.set_mult(middle, 1.0 + 0.25 * (rep + 1))  # a value not seen before
                runs["partial"] = p.run()
                for what, (dt, computed) in runs.items():
                    want = n + 1 if key == "script" else expect[what]
                    if computed != want:
                        raise RuntimeError(f"{p.name}, {what}: {computed} stages ran, not {want}")
                    times[key].setdefault(what, []).append(dt)
                    print(f"  {rep + 1}/{args.repeat} {p.name:<32} {what:<8} {dt:7.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        key: {what: statistics.median(v) for what, v in t.items()} for key, t in times.items()
    }
    return {
        "stages": n + 1,
        "rows": args.rows,
        "repeat": args.repeat,
        "changed_stage": f"s{middle}",
        "rerun_stages": expect["partial"],
        "names": names,
        "seconds": results,
        "all_seconds": times,
    }


def section(r: dict, m: dict) -> str:
    s, names = r["seconds"], r["names"]
    cols = list(s)
    base = "stardag-local"
    rows = [
        ("first run, fresh directory", "first"),
        ("fully cached re-run", "cached"),
        (f"re-run after a param change in {r['changed_stage']}", "partial"),
    ]
    out = [
        SECTION,
        "",
        (
            f"`python bench/compare.py --stages {r['stages'] - 1} --rows {r['rows']} "
            f"--repeat {r['repeat']}`: one pipeline done three ways, each a source stage and "
            f"{r['stages'] - 1} transforms (so {r['stages']} stages) over a table of "
            f"{r['rows']:,} rows (int64, float64, string columns): every stage reads the previous "
            "stage's Parquet file, does polars work on every row (a sine, a per-group maximum "
            "joined back, a string rewrite, a sort: `bench/compare_work.py`, the same code in all "
            "three) and writes Parquet (zstd)."
        ),
        "",
        (
            "- **stardag**: a spec of `bench/compare_ops.py` operators, `stardag run`, with the "
            "in-process executor (`--executor local`) and with the default Ray executor (a local "
            "Ray started by the run);"
        ),
        (
            f"- **DVC** ({m['dvc'].split()[-1] if m['dvc'] else '?'}, in a virtual environment of "
            "its own): a `dvc.yaml` whose stages run `python bench/compare_stage.py ...` with "
            "their param from `params.yaml` (tracked as a `params:` dependency), `dvc repro`, "
            "default settings (outputs copied into DVC's cache);"
        ),
        (
            "- **plain script** (`bench/compare_script.py`): every stage, every time, in one "
            "process; it has no cache, so its three times are three full runs."
        ),
        "",
        (
            "Whole processes, wall time of the command, median of "
            f"{r['repeat']} runs, the three ways interleaved in each round. The param change gives "
            f"`mult` of {r['changed_stage']} a value not seen before, so {r['rerun_stages']} "
            f"stages ({r['changed_stage']} and those after it) re-run; the benchmark checks the "
            "number of stages each tool ran."
        ),
        "",
        (
            f"Machine: {m['nproc']} CPUs (`nproc`), {m['cpu']}, Python {m['python']}, "
            f"DVC {m['dvc'].split()[-1]}, polars {m['polars']}, pyarrow {m['pyarrow']}; load "
            f"average {m['load_average']:.1f} at the start (the machine is shared)."
        ),
        "",
        "| | " + " | ".join(names[c] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    every = r.get("all_seconds", {})
    for label, what in rows:
        cells = []
        for c in cols:
            v = f"{s[c][what]:.2f} s"
            cell = f"**{v}**" if c == base else v
            runs = every.get(c, {}).get(what, [])
            if len(runs) > 1:
                cell += f" ({min(runs):.2f}-{max(runs):.2f})"
            cells.append(cell)
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out += ["", "(median, and in brackets the fastest and slowest of the runs)", ""]
    out += ["Ratios of the medians (time / stardag in-process time; above 1: stardag is faster):"]
    out += ["", "| | " + " | ".join(names[c] for c in cols if c != base) + " |"]
    out += ["|---|" + "---|" * (len(cols) - 1)]
    for label, what in rows:
        cells = [f"{s[c][what] / s[base][what]:.2f}" for c in cols if c != base]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    local, dvc, script = s[base], s["dvc"], s["script"]
    n, k = r["stages"], r["rerun_stages"]
    out += [
        "",
        "What the numbers say:",
        "",
        (
            f"- Fully cached: stardag reads {n} manifests and stats their files "
            f"({local['cached']:.2f} s, Ray not started); `dvc repro` checks every stage's "
            f"dependencies, params and outputs ({dvc['cached']:.2f} s); the script, with nothing "
            f"to reuse, computes everything again ({script['cached']:.2f} s)."
        ),
        (
            f"- One param changed in the middle: both tools re-run {k} of the {n} stages. DVC "
            "starts a Python process per stage (interpreter, polars import) and copies every "
            f"output into its cache ({dvc['partial']:.2f} s); stardag runs them in one process "
            f"({local['partial']:.2f} s); the script runs all {n} ({script['partial']:.2f} s)."
        ),
        (
            f"- First run: stardag in-process takes {local['first'] / script['first']:.1f}x the "
            "script's time: what it pays to be able to skip work later is per stage a checksum "
            "of each input file read, the conversion between polars and Arrow, the content hash, "
            "manifest and ref of each output, and once per process the import of the store's "
            "Parquet reader (pyarrow.dataset, which imports pandas)."
        ),
    ]
    if "stardag-ray" in s:
        ray = s["stardag-ray"]
        out += [
            (
                f"- On Ray, every run that computes something starts a local Ray first (first run "
                f"{ray['first']:.2f} s, partial {ray['partial']:.2f} s against "
                f"{local['first']:.2f} s and {local['partial']:.2f} s in-process): on one "
                "machine with stages of a fraction of a second, the in-process executor is the "
                "one to use; Ray is for stages that need other machines, GPUs, or run side by "
                "side. A fully cached run does not start Ray."
            ),
        ]
    return "\n".join(_wrap(line) for line in out) + "\n"


def _wrap(line: str, width: int = 92) -> str:
    """Prose wrapped like the rest of the file; tables and headings as they are."""
    if not line or line.startswith(("|", "#")):
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(
        line,
        width,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def write_docs(path: Path, text: str):
    doc = path.read_text()
    start = doc.find(SECTION)
    if start >= 0:
        nxt = doc.find("\n## ", start + len(SECTION))
        end = len(doc) if nxt < 0 else nxt + 1
        doc = doc[:start] + text + ("\n" if nxt >= 0 else "") + doc[end:]
    else:
        anchor = doc.find("## Reproducing")
        doc = doc + "\n" + text if anchor < 0 else doc[:anchor] + text + "\n" + doc[anchor:]
    path.write_text(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dvc", help="the dvc executable (default: dvc on PATH, /tmp/dvcenv/bin/dvc)")
    ap.add_argument("--stages", type=int, default=12, help="transforms after the source stage")
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-ray", dest="ray", action="store_false", help="leave out stardag on Ray")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--docs", help="rewrite the comparison section of this Markdown file")
    ap.add_argument("--from-json", help="no measuring: render the results of an earlier --json")
    args = ap.parse_args()
    if args.from_json:
        r = json.loads(Path(args.from_json).read_text())
        m = r["machine"]
    else:
        dvc = find_dvc(args.dvc)
        m = machine(dvc)
        print(f"machine: {m}")
        r = measure(args, dvc)
        r["machine"] = m
    text = section(r, m)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    if args.docs:
        write_docs(Path(args.docs), text)


if __name__ == "__main__":
    main()
