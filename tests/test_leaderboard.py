"""`hsta-bench leaderboard`: a fixed results store rendered and compared with expected files; the numbers
checked independently; published rows beside, never ranked; the store merged and written whole; bad input
as one line. (A leaderboard from a real run folder is checked in test_run.py, on its smoke run.)"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, assert_one_line_error, run_cli, run_main

DATA = Path(__file__).parent / "data" / "leaderboard"
COMMAND = ("leaderboard", "--store", "store", "--references", "published.csv")


@pytest.fixture
def board(tmp_path):
    """A private copy of the fixed store and its published rows; commands run there with relative paths."""
    shutil.copytree(DATA / "store", tmp_path / "store")
    shutil.copy(DATA / "published.csv", tmp_path / "published.csv")
    return tmp_path


@pytest.mark.parametrize("fmt,expected", [("md", "expected.md"), ("csv", "expected.csv")])
def test_the_fixed_store_renders_as_expected(board, fmt, expected):
    output = f"out/leaderboard.{fmt}"
    (board / "out" / "plots").mkdir(parents=True)
    (board / "out" / "plots" / "confusion-of-a-row-no-longer-shown.png").write_bytes(b"old")
    (board / "out" / "plots" / "mine.png").write_bytes(b"not the command's")
    proc = run_cli(*COMMAND, "--format", fmt, "--output", output, cwd=board)
    assert proc.returncode == 0, proc.stderr
    assert (board / output).read_text() == (DATA / expected).read_text()
    if fmt == "md":  # every row of the real tables has a confusion plot, the synthetic row none
        assert (board / "out" / "plots" / "mine.png").exists()  # only its own stale plots are removed
        plots = sorted(p.name for p in (board / "out" / "plots").glob("confusion-*"))
        assert len(plots) == 4 and all((board / "out" / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)
        assert all(f"(plots/{p})" in (board / output).read_text() for p in plots)
        assert "synthetic" not in "".join(plots)


def _counts(entry: str) -> tuple[list[int], list[int], list[str]]:
    """The fixed store's counts of one entry, expanded back to (true, predicted, subject) per sample."""
    runs = {r["entry"]: r for r in csv.DictReader((DATA / "store" / "runs.csv").open())}
    classes = runs[entry]["classes"].split("|")
    y, pred, subjects = [], [], []
    for row in csv.DictReader((DATA / "store" / "counts.csv").open()):
        if row["entry"] == entry:
            n = int(row["count"])
            y += [classes.index(row["label"])] * n
            pred += [classes.index(row["pred"])] * n
            subjects += [row["subject"]] * n
    return y, pred, subjects


def test_the_numbers_are_the_megc_metrics_and_the_paired_test(board, capsys):
    from sklearn.metrics import f1_score, recall_score

    from hsta_bench.engine import metrics

    proc = run_main(capsys, *COMMAND, "--json", cwd=board)  # the same as --format json
    assert proc.returncode == 0, proc.stderr
    real, other, synthetic = json.loads(proc.stdout)["tables"]
    assert (real["dataset"], real["scheme"], real["synthetic"]) == ("megc2019-flow", "loso", False)
    assert synthetic["synthetic"] is True and synthetic["published"] == []  # no paper beside a stand-in
    # at today's recipe: ranked; epochs and lr of their own: a table beside, compared with the ranked first
    assert [r["model"] for r in real["rows"]] == ["off_apexnet", "ststnet"]
    assert [r["model"] for r in other["rows"]] == ["hsta_flow", "htnet"] and other["published"] == []
    for table in (real, other):
        assert [r["rank"] for r in table["rows"]] == [1, 2]
        assert [r["uf1"] for r in table["rows"]] == sorted((r["uf1"] for r in table["rows"]), reverse=True)
    rows = real["rows"] + other["rows"]
    first = rows[0]
    for row in rows:
        y, pred, subjects = _counts(f"{row['run_id']}/{row['model']}/megc2019-flow/megc2019-composite")
        assert row["uf1"] == pytest.approx(f1_score(y, pred, average="macro"))
        assert row["uar"] == pytest.approx(recall_score(y, pred, average="macro"))
        assert row["n"] == len(y) and row["uf1_ci_low"] <= row["uf1_ci_high"]
        if row is first:
            first_counts = (y, pred, subjects)
            assert row["uf1_vs_first"] is None
        elif row["model"] == "hsta_flow":  # it left out subject s02: not the same samples, so no paired test
            assert row["p_value"] is None and row["significant"] is None
            assert row["uf1_vs_first"] == pytest.approx(row["uf1"] - first["uf1"])
        else:  # the same test, computed here from the samples themselves
            assert subjects == first_counts[2] and y == first_counts[0]
            test = metrics.paired_test(
                np.array(y), np.array(pred), np.array(first_counts[1]), np.array(subjects), 3, iterations=5000, seed=0
            )
            assert row["p_value"] == pytest.approx(test["p_value"]) and row["significant"] == (test["p_value"] < 0.05)
    by_model = {r["model"]: r for r in rows}
    assert by_model["ststnet"]["significant"] is False and by_model["htnet"]["significant"] is True
    assert set(by_model["ststnet"]["per_source"]) == {"casme2", "samm", "smic"}
    assert sum(s["n"] for s in by_model["ststnet"]["per_source"].values()) == by_model["ststnet"]["n"]
    assert [p["model"] for p in real["published"]] == ["Paper A"] and real["published"][0]["rank"] is None


def test_published_rows_are_never_ranked(board, capsys):
    proc = run_main(capsys, *COMMAND, "--format", "csv", cwd=board)
    rows = list(csv.DictReader(proc.stdout.splitlines()))
    published = [r for r in rows if r["kind"] == "published"]
    assert [r["model"] for r in published] == ["Paper A"] and published[0]["rank"] == ""
    # Paper A's 0.8 would rank second among the measured rows: the ranks stay 1, 2 without it
    assert [
        r["rank"] for r in rows if r["kind"] == "measured" and r["table"] == "megc2019-flow/megc2019-composite/loso"
    ] == [
        "1",
        "2",
    ]


def test_adding_a_run_to_the_store_replaces_its_own_entries_only(board, tmp_path):
    from hsta_bench.leaderboard import store

    before = store.read(board / "store")
    again = store.Store(
        [e for e in before.entries if e["run_id"] == "r2"], [c for c in before.counts if c["entry"].startswith("r2/")]
    )
    merged = before.merge(again)
    assert len(merged.entries) == len(before.entries) and len(merged.counts) == len(before.counts)
    store.write(merged, tmp_path / "copy")
    assert (tmp_path / "copy" / "runs.csv").read_text() == (board / "store" / "runs.csv").read_text()
    assert (tmp_path / "copy" / "counts.csv").read_text() == (board / "store" / "counts.csv").read_text()
    assert not list((tmp_path / "copy").glob(".*.tmp"))


def test_the_published_leaderboard_is_what_its_store_renders(tmp_path):
    """leaderboard/README.md is generated: regenerating it from the committed store changes nothing."""
    shutil.copytree(REPO / "leaderboard", tmp_path / "leaderboard")
    proc = run_cli("leaderboard", "--store", "leaderboard/results", "--output", "leaderboard/README.md", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "leaderboard" / "README.md").read_text() == (REPO / "leaderboard" / "README.md").read_text()
    page = (REPO / "leaderboard" / "README.md").read_text()
    ranked = page.split("## megc2019-flow · megc2019-composite · LOSO\n")[1].split("\n## ")[0].splitlines()
    for model in ("ststnet", "off_apexnet", "dual_inception", "rcn_a", "hsta_flow"):  # at their recipes, with intervals
        assert any(line.startswith("| ") and f"| {model} | " in line and "(0." in line for line in ranked)
    assert not any(f"| {model} | " in line for line in ranked for model in ("htnet", "htnet_small"))  # budgets
    for dataset in ("casme2", "samm", "smic", "casme3"):
        assert f"## {dataset} · " in page and "synthetic stand-in (not a result)" in page
    assert "=/" not in page and "--output /" not in page  # no machine's absolute paths on the published page


def test_published_commands_name_paths_as_the_readme_does():
    from hsta_bench.leaderboard.store import _published

    beside = str(REPO.parent / "shared" / "data" / "megc2019-composite")
    recorded = ["tune", "--data-root", f"megc2019-flow={beside}", "--output", "/scratch/runs", "--trials", "8"]
    assert _published(recorded) == [
        "tune",
        "--data-root",
        "megc2019-flow=../shared/data/megc2019-composite",
        "--trials",
        "8",
    ]
    assert _published(["run", "--data-root=samm=/mnt/lab/SAMM", "--output=/x"]) == ["run", "--data-root=samm=PATH"]
    assert _published(["run", "--data-root", "casme2=data/CASME2"]) == ["run", "--data-root", "casme2=data/CASME2"]


def _damage(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    "damage,fragments",
    [
        (
            lambda b: _damage(b / "store" / "counts.csv", ",negative,negative,", ",negative,happy,"),
            ["counts.csv, line", "'happy'", "not one of"],
        ),
        (
            lambda b: _damage(b / "store" / "counts.csv", "r1/ststnet/", "r9/ststnet/"),
            ["counts.csv, line 2", "r9/ststnet"],
        ),
        (lambda b: _damage(b / "store" / "runs.csv", ",800,", ",many,"), ["runs.csv, line 3, epochs", "'many'"]),
        (
            lambda b: (b / "store" / "runs.csv").write_text("entry,model\nx,y\n"),
            ["runs.csv: missing column(s)", "run_id"],
        ),
        (lambda b: _damage(b / "published.csv", ",0.8,", ",80%,"), ["published.csv, line 2, uf1", "'80%'"]),
        (
            lambda b: _damage(b / "published.csv", "Paper B,casme2,", "Paper B,casme5,"),
            ["published.csv, line 3", "unknown dataset 'casme5'"],
        ),
    ],
)
def test_a_damaged_store_or_reference_file_is_one_line(board, damage, fragments, capsys):
    damage(board)
    assert_one_line_error(run_main(capsys, *COMMAND, cwd=board), *fragments)


@pytest.mark.parametrize(
    "args,fragments",
    [
        ([], ["give run folders", "--store DIR"]),
        (["--store", "nowhere"], ["--store nowhere: no runs.csv there"]),
        (["nowhere"], ["nowhere: no such run folder"]),
        (["store"], ["store: neither a run folder", "nor a folder of runs"]),
        (["--store", "store", "--format", "xml"], ["--format xml: expected one of md, csv, json"]),
        (["--store", "store", "--format", "csv", "--json"], ["--json and --format csv"]),
        (["--store", "store", "--references", "absent.csv"], ["--references absent.csv: no such file"]),
        (
            ["--store", "store", "--set", "leaderboard.alpha=2"],
            ["leaderboard.alpha: Input should be less than 1 (got 2)"],
        ),
    ],
)
def test_user_errors_are_one_line(board, args, fragments, capsys):
    assert_one_line_error(run_main(capsys, "leaderboard", *args, cwd=board), *fragments)


def test_errors_leave_the_process_as_one_line_too(board):
    """The same as above through a separate process, once: exit status and stderr as a user sees them."""
    assert_one_line_error(run_cli("leaderboard", "--store", "nowhere", cwd=board), "--store nowhere: no runs.csv")


def test_a_tunes_outer_run_says_it_is_one():
    """A row from a tune's outer run reads as a nested tune (its trials a study, its --space and tune settings),
    not as a plain run of the recipe with a few tune.* settings."""
    from hsta_bench.leaderboard import render, store

    command = [
        "hsta-bench",
        "tune",
        "--model",
        "m",
        "--trials",
        "10",
        "--space",
        "train.lr=loguniform(1e-4,1e-2)",
        "--set",
        "tune.inner_k=2",
        "--set",
        "evaluation.audit=true",
    ]
    settings = store._settings(store._options(command), "m", "m", tune=True)
    assert settings == ["--tune 10", "--space train.lr=loguniform(1e-4,1e-2)", "--set tune.inner_k=2"]
    label = render.recipe({"settings": " ".join(settings), "preset": "paper"})
    assert label == "paper + nested tune (10 trials a study), space train.lr=loguniform(1e-4,1e-2), inner_k=2"
    assert store._settings(store._options(["hsta-bench", "run", "--set", "tune.inner_k=2"]), "m", "m") == [
        "--set tune.inner_k=2"
    ]


# Five subjects, two models, three classes: (subject, true class, model A's class, model B's class, count).
# Chosen so that the exact bootstrap distribution of A's UF1 puts at least 0.0096 of probability between
# each 2.5% / 97.5% point and the nearest jump of its CDF (about nine standard errors at 20000 draws), so
# a correct resampler lands on the exact atoms, and the exact paired p-value is 2/32.
ORACLE = [
    (0, 0, 0, 1, 2), (0, 1, 1, 1, 1), (0, 2, 1, 1, 2),
    (1, 0, 2, 0, 2), (1, 1, 1, 1, 3), (1, 2, 2, 0, 3),
    (2, 0, 0, 0, 3), (2, 1, 1, 2, 3), (2, 2, 2, 0, 1),
    (3, 0, 0, 0, 2), (3, 1, 1, 0, 3), (3, 2, 2, 2, 2),
    (4, 0, 2, 0, 2), (4, 1, 1, 2, 3), (4, 2, 2, 0, 3),
]  # fmt: skip


def _pooled_uf1(rows: list[tuple], which: int) -> float:
    from sklearn.metrics import f1_score

    y = [label for _, label, *preds, n in rows for _ in range(n)]
    pred = [preds[which] for _, _, *preds, n in rows for _ in range(n)]
    return float(f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0))


def test_interval_bounds_and_p_value_match_an_exact_oracle(tmp_path, capsys):
    """Independent of the code under test: the interval's bounds are the exact quantiles of the subject
    bootstrap (every multiset of five subjects, weighted by its multinomial probability, UF1 by
    scikit-learn), and the p-value is scipy's exact paired permutation test over all 2^5 swaps."""
    import itertools
    import math

    from scipy import stats

    from hsta_bench.leaderboard import store

    classes = ["negative", "positive", "surprise"]
    runs = {r["entry"]: r for r in csv.DictReader((DATA / "store" / "runs.csv").open())}
    template = runs["r1/ststnet/megc2019-flow/megc2019-composite"]
    entries, counts = [], []
    for which, model in enumerate(["model_a", "model_b"]):
        entry = f"o1/{model}/megc2019-flow/megc2019-composite"
        fields = {**template, "entry": entry, "run_id": "o1", "model": model, "bootstrap": "20000"}
        entries.append(fields)
        for subject, label, *preds, n in ORACLE:
            row = {"entry": entry, "subject": f"s{subject}", "source": "casme2", "label": classes[label]}
            counts.append({**row, "pred": classes[preds[which]], "count": str(n)})
    folder = tmp_path / "store"
    folder.mkdir()
    for name, rows in (("runs.csv", entries), ("counts.csv", counts)):
        with (folder / name).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    assert len(store.read(folder).entries) == 2  # the hand-made store is a valid one
    shutil.copy(DATA / "published.csv", tmp_path / "published.csv")
    sets = ("--set", "leaderboard.permutations=20000", "--set", "leaderboard.seed=0")
    proc = run_main(capsys, *COMMAND, "--json", *sets, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in json.loads(proc.stdout)["tables"][0]["rows"]}

    by_subject = {s: [r for r in ORACLE if r[0] == s] for s in range(5)}
    mass: dict[float, float] = {}
    for draw in itertools.combinations_with_replacement(range(5), 5):
        times = np.bincount(draw, minlength=5)
        p = math.factorial(5) / math.prod(math.factorial(t) for t in times) / 5**5
        value = round(_pooled_uf1([r for s in draw for r in by_subject[s]], 0), 12)
        mass[value] = mass.get(value, 0.0) + p
    atoms = sorted(mass)
    cdf = np.cumsum([mass[a] for a in atoms])
    assert cdf[-1] == pytest.approx(1.0)
    low, high = (atoms[int(np.searchsorted(cdf, q))] for q in (0.025, 0.975))
    assert atoms[0] < low < high < atoms[-1]  # interior quantiles: neither bound is the sample's extreme
    a = rows["model_a"]
    assert a["uf1"] == pytest.approx(_pooled_uf1(ORACLE, 0))
    assert (a["uf1_ci_low"], a["uf1_ci_high"]) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))

    def difference(x, y):  # indices 0-4 stand for A's predictions of a subject, 5-9 for B's
        def pooled(indices):
            return [(s, lbl, pr[int(i >= 5)], n) for i in indices for (s, lbl, *pr, n) in by_subject[i % 5]]

        return _pooled_uf1(pooled(x), 0) - _pooled_uf1(pooled(y), 0)

    exact = stats.permutation_test(
        (np.arange(5), np.arange(5) + 5), difference, permutation_type="samples", n_resamples=np.inf, vectorized=False
    )
    assert exact.pvalue == pytest.approx(2 / 32)
    b = rows["model_b"]
    assert b["uf1_vs_first"] == pytest.approx(-exact.statistic)
    assert b["p_value"] == pytest.approx(exact.pvalue, abs=0.01) and b["significant"] is False


def test_a_row_that_predicts_one_class_for_nearly_every_sample_is_marked_collapsed():
    from hsta_bench.leaderboard import render, tables

    entry = {"classes": "a|b|c", "bootstrap": 0, "level": 0.95, "bootstrap_seed": 0, "model": "m"}

    def row(pred_a: int):  # 20 samples, 4 subjects: a, b, c as true classes; `pred_a` of them predicted a
        preds = ["a"] * pred_a + ["b", "c"] * 10
        counts = [
            {"entry": "e", "subject": f"s{i % 4}", "source": "x", "label": "abc"[i % 3], "pred": p, "count": 1}
            for i, p in enumerate(preds[:20])
        ]
        return tables.make_row(entry, counts)

    collapsed, spread = row(19), row(17)  # 95% and 85% of the predictions are a
    assert collapsed.collapsed == ("a", 0.95) and spread.collapsed is None
    table = tables.Table("d", "p", "loso", False, [collapsed])
    assert render._model(table, collapsed) == "m (**collapsed**: predicts a for 95% of samples)"
    assert render._model(table, spread) == "m"
