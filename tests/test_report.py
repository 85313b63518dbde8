"""`stardag report`: every accuracy with its n and a 95% Wilson interval, in the table, the
JSON and the plot's error bars; and where the held-out problems came from."""

import json

import pytest
from click.testing import CliRunner
from report_ops import SCORES_SPEC as SPEC
from support import run, write

from stardag.cli import main
from stardag.report import wilson


@pytest.mark.parametrize(
    "k,n,low,high",
    [
        # z = 1.96: (p + z^2/2n) / (1 + z^2/n) -/+ z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
        (0, 10, 0.0, 0.27753),
        (5, 10, 0.23659, 0.76341),
        (10, 10, 0.72247, 1.0),
        (81, 263, 0.25529, 0.36621),
    ],
)
def test_the_wilson_interval_of_known_proportions(k, n, low, high):
    got = wilson(k / n, n)
    assert got == pytest.approx([low, high], abs=5e-5)
    assert wilson(0.0, 0) is None


def test_the_report_gives_n_and_an_interval_for_every_accuracy(tmp_path):
    spec = write(tmp_path / "scores.yaml", SPEC)
    store = str(tmp_path / "store")
    run(spec, store=store)
    cli = CliRunner()
    out = cli.invoke(
        main, ["report", str(spec), "--store", store, "--json", "--plot", str(tmp_path / "r.png")]
    )
    assert out.exit_code == 0, out.output
    its = json.loads(out.stdout)["iterations"]
    assert [(e["iteration"], e["accuracy"], e["n"]) for e in its] == [
        (0, 0.0, 10),
        (1, 0.5, 10),
        (2, 1.0, 10),
    ]
    for e in its:
        assert e["ci95"] == wilson(e["accuracy"], 10)
        assert e["ci95"][0] <= e["accuracy"] <= e["ci95"][1]
        assert e["by_slice_n"] == {"short": 10} and e["by_slice_ci95"] == {"short": e["ci95"]}
        assert e["heldout"] == {"test.jsonl, whole": 10} and e["truncated"] == 0.1
    assert (tmp_path / "r.png").stat().st_size > 1000
    assert its[0]["training"] == []  # before training
    assert [[(s["step"], s["loss"]) for s in e["training"]] for e in its[1:]] == [
        [(1, 2.0), (2, 1.5), (3, 1.0)],
        [(1, 1.0), (2, 0.75), (3, 0.5)],
    ]

    text = cli.invoke(main, ["report", str(spec), "--store", store, "--no-plot"])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert "accuracy (95% CI)" in lines[0] and "acc[short] (95% CI, n)" in lines[0]
    assert "50.0% (23.7-76.3)" in lines[2] and "50.0% (23.7-76.3, n=10)" in lines[2]
    assert lines[-1] == "held-out problems: test.jsonl, whole (n=10)"


def test_the_plot_draws_each_interval_as_an_error_bar(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from stardag import report

    data = {
        "spec": "s",
        "not_computed": [],
        "iterations": [
            report.entry_of(i, [{"kind": "accuracy", "slice": "all", "value": k / 20, "n": 20}])
            for i, k in enumerate((2, 9))
        ],
    }
    drawn = []
    real = plt.Axes.errorbar

    def spy(ax, x, y, yerr=None, **kw):
        drawn.append((list(x), list(y), [list(e) for e in yerr]))
        return real(ax, x, y, yerr=yerr, **kw)

    plt.Axes.errorbar = spy
    try:
        report.plot(data, tmp_path / "p.png")
    finally:
        plt.Axes.errorbar = real
    ((xs, ys, (below, above)),) = drawn
    assert xs == [0, 1] and ys == pytest.approx([10.0, 45.0])
    for y, b, a, e in zip(ys, below, above, data["iterations"]):
        assert (y - b, y + a) == pytest.approx((100 * e["ci95"][0], 100 * e["ci95"][1]))


def test_the_plot_draws_the_training_loss_curves_beside_the_accuracy(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from stardag import report

    entries = [
        report.entry_of(i, [{"kind": "accuracy", "slice": "all", "value": 0.5, "n": 4}])
        for i in (0, 1, 2)
    ]
    for e in entries[1:]:
        e["training"] = [
            {"step": s, "loss": 2.0 / s / e["iteration"], "lr": 1e-5} for s in (1, 2, 3)
        ]
    lines = []
    real = plt.Axes.plot

    def spy(ax, *args, **kw):
        lines.append((ax.get_ylabel(), kw.get("label"), list(args[1])))
        return real(ax, *args, **kw)

    plt.Axes.plot = spy
    try:
        report.plot({"spec": "s", "not_computed": [], "iterations": entries}, tmp_path / "p.png")
    finally:
        plt.Axes.plot = real
    losses = [(label, ys) for _, label, ys in lines if label and label.startswith("iteration")]
    assert losses == [("iteration 1", [2.0, 1.0, 2 / 3]), ("iteration 2", [1.0, 0.5, 1 / 3])]


def test_no_engine_module_mentions_the_star_method_or_its_metrics():
    """The engine renders whatever metrics an operator declares: what STaR measures, and
    its name, belong to operators/."""
    import re
    from pathlib import Path

    words = re.compile(
        r"(?-i:STaR)|Zelikman|rationali[sz]|faithful|train_used|\bgeneration\b|figure[ -]?4"
        r"|held-?out|scratchpad",
        re.IGNORECASE,
    )
    root = Path(__file__).resolve().parent.parent / "stardag"
    offenders = [
        f"{path.name}:{i}: {m.group(0)}"
        for path in sorted(root.glob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        for m in words.finditer(line)
    ]
    assert offenders == []


def test_the_report_shows_any_metrics_as_their_operator_declares_them():
    from dataclasses import asdict

    from stardag import report
    from stardag.operator import Metric

    kinds = {
        "exact": Metric("exact match", show="score", short="em"),
        "length": Metric("tokens", slices={"prompt": "in", "completion": "out"}, percent=False),
        "corpus": Metric("corpus", show="source"),
    }
    rows = [
        {"kind": "exact", "slice": "all", "value": 0.25, "n": 8},
        {"kind": "exact", "slice": "news", "value": 0.5, "n": 4},
        {"kind": "length", "slice": "completion", "value": 31.5, "n": 8},
        {"kind": "length", "slice": "prompt", "value": 12.0, "n": 8},
        {"kind": "corpus", "slice": "wmt.jsonl", "value": 1.0, "n": 8},
        {"kind": "novel", "slice": "all", "value": 0.125, "n": 8},  # declared by no one
    ]
    entry = report.entry_of(1, rows, kinds)
    assert entry["headline"] == "exact" and (entry["exact"], entry["n"]) == (0.25, 8)
    assert entry["by_slice"] == {"news": 0.5} and entry["length"]["prompt"] == 12.0
    assert entry["corpus"] == {"wmt.jsonl": 8} and entry["novel"] == {"all": 0.125}
    data = {
        "spec": "mt",
        "metrics": {k: asdict(m) for k, m in report.resolve(kinds, rows).items()},
        "iterations": [entry],
        "not_computed": [],
    }
    head, line, note = report.table(data).splitlines()
    assert (
        head.split()
        == (
            "iter n exact match (95% CI) em[news] (95% CI, n) tokens:in tokens:out novel:all"
        ).split()
    )
    assert "25.0% (7.1-59.1)" in line and line.split()[-3:] == ["12", "31.5", "12.5%"]
    assert note == "corpus: wmt.jsonl (n=8)"
