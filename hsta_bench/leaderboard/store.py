"""The leaderboard's results store: what a run's evaluations come to, small enough to commit.

    runs.csv    one row per evaluation (a model on a dataset under a protocol, in one run): provenance
    counts.csv  its per-subject confusion counts: entry, subject, source, label, pred, count (non-zero)
    settings/   KEY.yaml per config key: the resolved settings an evaluation ran (engine/provenance.py), as a
                --config file, so that `hsta-bench run ... --config settings/KEY.yaml` runs them again

Per-subject counts are all the pooled scores, the subject-bootstrap intervals and the paired test need
(engine/metrics.py), so the store re-scores exactly what the run scored without keeping per-sample
predictions of licensed data. `from_run` reads a run folder; `read` / `write` the CSV pair.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import yaml

from hsta_bench import config
from hsta_bench.data import get_source
from hsta_bench.engine import provenance
from hsta_bench.errors import UserError
from hsta_bench.io import atomic_write
from hsta_bench.paths import PACKAGE_DIR, recipe_of

ENTRY_COLUMNS = {  # name -> type
    "entry": str,
    "run_id": str,
    "model": str,
    "dataset": str,
    "protocol": str,
    "scheme": str,
    "synthetic": bool,
    "classes": str,
    "preset": str,
    "settings": str,
    "epochs": int,
    "selection": str,
    "config_key": str,
    "seeds": str,
    "commit": str,
    "torch": str,
    "hardware": str,
    "seconds": float,
    "finished": str,
    "bootstrap": int,
    "level": float,
    "bootstrap_seed": int,
    "command": str,
}
COUNT_COLUMNS = {"entry": str, "subject": str, "source": str, "label": str, "pred": str, "count": int}
# newer columns, absent from older stores and empty where they do not apply: name -> (type, default)
OPTIONAL_COLUMNS = {
    "audit_every": (int, 0),  # the selection audit (engine/audit.py): epochs between recorded test predictions
    "audit_uf1": (float, None),  # what choosing each test subject's best epoch would have reported: not a result
    "audit_uar": (float, None),
    "origin": (str, ""),  # a model from outside the repository: its entry point and package, or --import MODULE
}

# --set keys that change how a run is dispatched or how fast it is prepared, never its numbers
_NOT_RESULTS = ("dispatch.", "preprocess.workers", "evaluation.workers", "evaluation.audit", "evaluation.save_weights")


@dataclass
class Store:
    entries: list[dict] = field(default_factory=list)
    counts: list[dict] = field(default_factory=list)
    settings: dict[str, dict] = field(default_factory=dict)  # config key -> resolved settings (provenance.py)

    def merge(self, other: Store) -> Store:
        """This store with `other`'s entries added; an entry already here is replaced by other's."""
        new = {e["entry"] for e in other.entries}
        return Store(
            [e for e in self.entries if e["entry"] not in new] + other.entries,
            [c for c in self.counts if c["entry"] not in new] + other.counts,
            {**self.settings, **other.settings},
        )


# ----------------------------------------------------------------------------------------- CSV files


def _convert(value: str, kind: type, where: str):
    if kind is str:
        return value
    if kind is bool:
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise UserError(f"{where}: expected true or false, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise UserError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def read_csv(path: Path, columns: dict[str, type], optional: dict | None = None) -> list[dict]:
    """Rows of a CSV file with these columns, typed, and the `optional` ones (name -> (type, default)) where
    present and not empty; a missing file, column or bad value is one line naming the file (and the line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    fieldnames = reader.fieldnames or []
    missing = [c for c in columns if c not in fieldnames]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(columns)})")
    rows = []
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(v is None for v in raw.values()):
            raise UserError(f"{path}, line {line}: expected {len(fieldnames)} fields")
        row = {name: _convert(raw[name], kind, f"{path}, line {line}, {name}") for name, kind in columns.items()}
        for name, (kind, default) in (optional or {}).items():
            value = raw.get(name) or ""
            row[name] = _convert(value, kind, f"{path}, line {line}, {name}") if value else default
        rows.append(row)
    return rows


def csv_text(rows: list[dict], columns) -> str:
    """Rows as CSV with these columns (others dropped, missing ones empty; booleans as true/false)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items() if k in columns})
    return buffer.getvalue()


def read(folder: Path) -> Store:
    folder = Path(folder)
    if not (folder / "runs.csv").exists():
        raise UserError(
            f"--store {folder}: no runs.csv there (make one with `hsta-bench leaderboard RUN_DIR --store {folder}`)"
        )
    entries = read_csv(folder / "runs.csv", ENTRY_COLUMNS, OPTIONAL_COLUMNS)
    counts = read_csv(folder / "counts.csv", COUNT_COLUMNS)
    classes = {e["entry"]: e["classes"].split("|") for e in entries}
    for line, c in enumerate(counts, start=2):
        where = f"{folder / 'counts.csv'}, line {line}"
        if c["entry"] not in classes:
            raise UserError(f"{where}: entry {c['entry']} is not in runs.csv")
        if c["label"] not in classes[c["entry"]] or c["pred"] not in classes[c["entry"]]:
            raise UserError(
                f"{where}: class {c['label']!r} or {c['pred']!r} is not one of {c['entry']}'s classes "
                f"({', '.join(classes[c['entry']])})"
            )
        if c["count"] < 1:
            raise UserError(f"{where}: count must be a positive integer, got {c['count']}")
    return Store(entries, counts, read_settings(folder, entries))


def settings_file(folder: Path, key: str) -> Path:
    return Path(folder) / "settings" / f"{key}.yaml"


def read_settings(folder: Path, entries: list[dict]) -> dict[str, dict]:
    """The settings of each entry's config key from settings/KEY.yaml, where the store has one: read back into
    resolved settings (provenance.complete's shape) and checked to hash to the key the file is named by."""
    found: dict[str, dict] = {}
    for e in entries:
        key = e["config_key"]
        path = settings_file(folder, key)
        if key in found or not path.is_file():
            continue
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8"))
            (recipe, spec), *more = tree["models"].items()
            evaluation = dict(tree["evaluation"])
            settings = {
                "model": e["model"],
                "dataset": e["dataset"],
                "protocol": evaluation.pop("protocol"),
                "train": spec["train"],
                "overrides": spec.get("model") or {},
                "evaluation": evaluation,
                **{k: tree["about"][k] for k in ("encoding", "weights", "folds") if k in (tree.get("about") or {})},
            }
            if more:
                raise ValueError("more than one recipe")
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UserError(f"{path}: not a settings file of this store ({exc})") from None
        if provenance.key(settings) != key:
            raise UserError(
                f"{path}: these settings hash to config key {provenance.key(settings)}, not {key} (edited by hand?)"
            )
        found[key] = provenance.complete(settings)
    return found


def settings_text(settings: dict, key: str, presets: Iterable[str] = ()) -> str:
    """A settings file: a --config file (provenance.as_config) under the recipe of the settings' model, and
    what the key hashes besides (`about`: how the model reads its inputs, given weights, fold recipes), which a
    run takes from the model's code and the command line, not from this file. `presets`: those the key's rows
    ran under."""
    from hsta_bench.engine.recipes import recipe_name  # noqa: PLC0415 - torch (TrainConfig): only when writing

    cfg = config.shipped()
    recipe = recipe_name(settings["model"], cfg) or settings["model"]
    tree = provenance.as_config(settings, recipe)
    # a preset's training settings come over a recipe's: the file sets those of its rows' presets too, so that
    # a row's command (its --preset and this file) resolves to what ran, a --set over the preset's included
    train = tree["models"][recipe]["train"]
    over = {
        name: {"train": {k: train[k] for k in cfg["presets"][name]["train"]}}
        for name in sorted(set(presets))
        if (cfg["presets"].get(name) or {}).get("train")
    }
    if over:
        tree["presets"] = over
    about = {k: settings[k] for k in ("encoding", "weights", "folds") if settings.get(k)}
    head = (
        f"# config key {key}: {settings['model']} on {settings['dataset']} (protocol {settings['protocol']}), "
        "the resolved settings it ran.\n"
        "# The leaderboard row's command (`hsta-bench run ... --config THIS_FILE`) runs them again.\n"
    )
    body = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=120)
    if about:
        body += "# for readers (no run reads it): a run takes these from the model's code and its command line\n"
        body += yaml.safe_dump({"about": about}, sort_keys=False, default_flow_style=None, width=120)
    return head + body


def write(store: Store, folder: Path) -> None:
    """Both files, each written whole (a temporary file renamed), sorted so that the same runs give the same
    bytes."""
    entries = sorted(store.entries, key=lambda e: e["entry"])
    counts = sorted(store.counts, key=lambda c: (c["entry"], c["subject"], c["label"], c["pred"]))
    # an optional column only where some entry has it: a store without audits keeps its bytes
    optional = [c for c, (_, default) in OPTIONAL_COLUMNS.items() if any(e.get(c, default) != default for e in entries)]
    presets: dict[str, set] = {}  # config key -> the presets its rows ran under
    for e in entries:
        presets.setdefault(e["config_key"], set()).add(e["preset"])
    folder = Path(folder)
    for key in sorted(set(presets) & set(store.settings)):
        text = settings_text(store.settings[key], key, presets[key])
        path = settings_file(folder, key)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
    for name, rows, columns in (
        ("counts.csv", counts, COUNT_COLUMNS),
        ("runs.csv", entries, [*ENTRY_COLUMNS, *optional]),
    ):
        text = csv_text(rows, columns)
        atomic_write(folder / name, lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
    for stale in sorted((folder / "settings").glob("*.yaml")):  # settings no entry refers to any more
        if stale.stem not in presets:
            stale.unlink()


# ------------------------------------------------------------------------------------------ run folders


def run_folders(paths: list[Path]) -> list[tuple[Path, bool]]:
    """Each path is a run folder (it has run.json) or a folder of them (results/, whose tunes' outer runs
    count too): (run folder, named by the user), sorted, no duplicates."""
    found: dict[Path, bool] = {}
    for path in map(Path, paths):
        if (path / "run.json").is_file():
            found[path.resolve()] = True
        elif path.is_dir():
            inside = sorted(p.parent for p in [*path.glob("*/run.json"), *path.glob("*/outer-*/run.json")])
            if not inside:
                raise UserError(f"{path}: neither a run folder (no run.json) nor a folder of runs")
            for run in inside:
                found.setdefault(run.resolve(), False)
        else:
            raise UserError(f"{path}: no such run folder")
    return list(found.items())


def _options(command: list[str]) -> list[tuple[str, str]]:
    """The (option, value) pairs of a recorded command line (`hsta-bench run --set a=1 ...`)."""
    takes_value = {
        "--dataset",
        "--model",
        "--preset",
        "--set",
        "--config",
        "--data-root",
        "--output",
        "--address",
        "--resume",
        "--trials",
        "--space",
        "--weights",
    }
    pairs: list[tuple[str, str]] = []
    i = 2
    while i < len(command):
        token = command[i]
        if token.startswith("--") and token.split("=", 1)[0] in takes_value and "=" in token:
            option, value = token.split("=", 1)  # two parts: "=" is in token
            pairs.append((option, value))
        elif token in takes_value and i + 1 < len(command):
            pairs.append((token, command[i + 1]))
            i += 1
        i += 1
    return pairs


def _settings(pairs, model: str, recipe: str | None, tune: bool = False) -> list[str]:
    """The --config and --set options of a run that bear on this model's numbers; a tune's outer run also says
    it is one (`--tune TRIALS`, trials per study) with its --space changes."""
    kept = []
    if tune:
        trials = [v for o, v in pairs if o == "--trials"]
        kept.append(f"--tune {trials[-1] if trials else 'default'}")
    for option, value in pairs:
        if option == "--space" and tune:
            kept.append(f"--space {value}")
        elif option in ("--config", "--weights"):
            kept.append(f"{option} {value}")
        elif option == "--set":
            key = value.split("=", 1)[0]
            parts = key.split(".")
            if key.startswith(_NOT_RESULTS):
                continue
            if parts[0] == "models" and len(parts) > 1 and parts[1] != recipe:
                continue
            if parts[0] == "tuned" and len(parts) > 1 and parts[1] != model:
                continue
            kept.append(f"--set {value}")
    return kept


def _seeds(seeds: dict) -> str:
    values = sorted(int(v) for v in seeds.values())
    if values and values == list(range(values[0], values[0] + len(values))):
        return f"{values[0]}-{values[-1]}" if len(values) > 1 else str(values[0])
    return " ".join(map(str, values))


def _portable(root: str) -> str:
    """A `NAME=PATH` data root as the README names it: a path inside the repository or beside it relative to
    the repository (`../shared/...`, where the commands are run from), any other machine's path `NAME=PATH`."""
    name, _, path = root.partition("=")
    if not Path(path).is_absolute():
        return root
    repo = PACKAGE_DIR.parent
    if Path(path).is_relative_to(repo.parent):
        return f"{name}={os.path.relpath(path, repo)}"
    return f"{name}=PATH"


def _published(tokens: list[str]) -> list[str]:
    """A recorded command line for the page: no --output (where one machine wrote its results), data roots
    as the README names them."""
    out: list[str] = []
    skip = False
    for i, token in enumerate(tokens):
        if skip:
            skip = False
        elif token == "--output":
            skip = True
        elif token.startswith("--output="):
            continue
        elif i > 0 and tokens[i - 1] == "--data-root":
            out.append(_portable(token))
        elif token.startswith("--data-root="):
            out.append(f"--data-root={_portable(token.split('=', 1)[1])}")
        else:
            out.append(token)
    return out


def _reproduce(run: dict, evaluation: dict, settings: list[str], pairs) -> str:
    command = run.get("command") or []
    sub = command[1] if len(command) > 1 else None
    if sub != "run":  # a tune's outer run: its own command reproduces it, less where it wrote its results
        return " ".join(["hsta-bench", *_published(command[1:])])
    dataset = evaluation["dataset"]
    try:
        names = {dataset, *(get_source(dataset).parts or ())}
    except UserError:
        names = {dataset}
    roots = [f"--data-root {_portable(v)}" for o, v in pairs if o == "--data-root" and v.split("=", 1)[0] in names]
    preset = [f"--preset {run['preset']}"] if run.get("preset") else []
    imports = [f"--import {m}" for m in run.get("imports") or []]
    return " ".join(
        [
            "hsta-bench run",
            *imports,
            f"--dataset {dataset}",
            f"--model {evaluation['model']}",
            *preset,
            *roots,
            *settings,
        ]
    )


def reproduce(entry: dict, settings_dir: str) -> str:
    """The command that runs an entry's resolved settings again: its run's command with the settings file
    (`settings_dir/KEY.yaml`) in place of the run's --set and --config options. A tune's outer run is
    reproduced by its tune: its command as recorded."""
    tokens = shlex.split(entry["command"])
    if len(tokens) < 2 or tokens[1] != "run":
        return entry["command"]
    kept: list[str] = []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token in ("--set", "--config"):
            skip = True
        elif not token.startswith(("--set=", "--config=")):
            kept.append(token)
    return shlex.join([*kept, "--config", f"{settings_dir}/{entry['config_key']}.yaml"])


def _read_run(folder: Path) -> tuple[dict, pl.DataFrame]:
    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder / 'run.json'}: cannot read it ({exc})") from None
    if not isinstance(run, dict) or "evaluations" not in run or "run_id" not in run:
        raise UserError(f"{folder / 'run.json'}: not a run record (no run_id / evaluations)")
    path = folder / "predictions.parquet"
    if not path.exists():
        raise UserError(
            f"{folder}: no predictions.parquet (the run finished no evaluation; finish it with "
            f"`hsta-bench run --resume {run['run_id']}`)"
        )
    try:
        predictions = pl.read_parquet(path)
    except Exception as exc:  # polars raises several kinds for a damaged file
        raise UserError(f"{path}: cannot read it ({str(exc).splitlines()[0]})") from None
    need = {"dataset", "protocol", "model", "subject", "source", "label", "pred", "sample_id"}
    if not need <= set(predictions.columns):
        raise UserError(f"{path}: missing column(s) {', '.join(sorted(need - set(predictions.columns)))}")
    check_splits(folder, predictions)
    return run, predictions


def check_splits(folder: Path, predictions) -> None:
    """Refuse a run whose recorded splits put a subject on both sides of a fold, or whose predictions test a
    sample twice: the leaderboard re-checks what the run says it did."""
    path = folder / "splits.parquet"
    try:
        splits = pl.read_parquet(path)
    except FileNotFoundError:
        raise UserError(f"{folder}: no splits.parquet (a run records its splits so that they can be checked)") from None
    except Exception as exc:
        raise UserError(f"{path}: cannot read it ({str(exc).splitlines()[0]})") from None
    sides = (
        splits.with_columns(pl.col("role") == "test")
        .group_by(["dataset", "protocol", "fold", "subject"])
        .agg(pl.col("role").n_unique().alias("sides"))
        .filter(pl.col("sides") > 1)
        .sort(["dataset", "fold", "subject"])
    )
    if sides.height:
        d, _, fold, subject, _ = sides.row(0)
        raise UserError(
            f"{path}: subject {subject} is on both the test and the training side of fold {fold} "
            f"({d}); this run's scores are not admitted"
        )
    twice = (
        predictions.group_by(["model", "dataset", "protocol", "sample_id"])
        .len()
        .filter(pl.col("len") > 1)
        .sort(["model", "sample_id"])
    )
    if twice.height:
        model, d, _, sample, n = twice.row(0)
        raise UserError(f"{folder / 'predictions.parquet'}: {model} tested sample {sample} of {d} {n} times")


def _hardware(e: dict, driver: str) -> str:
    """Where an evaluation's folds trained, as its fragments recorded it (device name, precision, fold
    batching); the driver's machine for runs from before that was recorded."""
    placed = e.get("placement") or []
    if not placed:
        return driver
    parts = []
    for p in placed:
        how = ", ".join([p["precision"]] + (["fold-batched"] if p.get("fold_batched") else []))
        count = f" x{p['folds']} folds" if len(placed) > 1 else ""
        parts.append(f"{p['name']} ({how}){count}")
    return "; ".join(parts)


def from_run(folder: Path, notes: list[str] | None = None) -> Store:
    """The store entries of one run folder: one per finished evaluation. Unfinished ones are left out and
    said in `notes`."""
    folder = Path(folder)
    run, predictions = _read_run(folder)
    env = run.get("environment") or {}
    driver = ", ".join(str(x) for x in (env.get("processor"), f"{env.get('cpus')} CPUs", env.get("cuda")) if x)
    evaluation_cfg = (run.get("config") or {}).get("evaluation") or {}
    pairs = _options(run.get("command") or [])
    store = Store()
    covered = set()
    for e in run["evaluations"]:
        key = (e["model"], e["dataset"], e["protocol"])
        rows = predictions.filter(
            (pl.col("model") == e["model"])
            & (pl.col("dataset") == e["dataset"])
            & (pl.col("protocol") == e["protocol"])
        )
        if rows.height == 0:
            if notes is not None:
                notes.append(f"{folder.name}: {e['model']} on {e['dataset']} did not finish; left out")
            continue
        covered.add(key)
        if e.get("samples") and rows.height != e["samples"]:
            raise UserError(
                f"{folder / 'predictions.parquet'}: {e['model']} on {e['dataset']} has predictions for "
                f"{rows.height} of its {e['samples']} samples"
            )
        entry = f"{run['run_id']}/{e['model']}/{e['dataset']}/{e['protocol']}"
        classes = list(e["classes"])
        strange = set(rows["label"].to_list()) | set(rows["pred"].to_list())
        if not strange <= set(classes):
            raise UserError(
                f"{folder / 'predictions.parquet'}: {e['model']} on {e['dataset']} has classes "
                f"{', '.join(sorted(strange - set(classes)))} outside its protocol's "
                f"({', '.join(classes)})"
            )
        recipe = recipe_of(e.get("recipe"))
        resolved = recorded_settings(e, folder)
        config_key = provenance.key(resolved)
        store.settings[config_key] = resolved
        command = run.get("command") or []
        settings = _settings(pairs, e["model"], recipe, tune=len(command) > 1 and command[1] == "tune")
        scheme = e.get("evaluation", {}).get("scheme", "loso")
        if scheme == "kfold":
            scheme = f"kfold-{e['evaluation'].get('k')}"
        store.entries.append(
            {
                "entry": entry,
                "run_id": run["run_id"],
                "model": e["model"],
                "dataset": e["dataset"],
                "protocol": e["protocol"],
                "scheme": scheme,
                "synthetic": bool(e.get("synthetic")),
                "classes": "|".join(classes),
                "preset": run.get("preset") or "",
                "settings": " ".join(settings),
                "epochs": 0 if e.get("given_weights") else int(e["train"]["epochs"]),
                "selection": "given" if e.get("given_weights") else e["train"].get("selection", "last"),
                "config_key": config_key,
                "seeds": _seeds(e.get("seeds") or {}),
                "commit": run.get("git_commit") or "",
                "torch": env.get("torch") or "",
                "hardware": _hardware(e, driver),
                "seconds": float(e.get("seconds") or 0.0),
                "finished": run.get("finished") or run.get("started") or "",
                "bootstrap": int(evaluation_cfg.get("bootstrap", 2000)),
                "level": float(evaluation_cfg.get("level", 0.95)),
                "bootstrap_seed": int(evaluation_cfg.get("seed", 0)),
                "command": _reproduce(run, e, settings, pairs),
                "audit_every": int((e.get("audit") or {}).get("every", 0)),
                "origin": (run.get("model_origins") or {}).get(e["model"], ""),
                **{f"audit_{k}": round(float(e["audit"][k]), 4) if e.get("audit") else None for k in ("uf1", "uar")},
            }
        )
        grouped = rows.group_by(["subject", "source", "label", "pred"]).len().sort(["subject", "label", "pred"])
        for subject, source, label, pred, count in grouped.iter_rows():
            store.counts.append(
                {
                    "entry": entry,
                    "subject": str(subject),
                    "source": str(source),
                    "label": label,
                    "pred": pred,
                    "count": int(count),
                }
            )
    stray = {tuple(k) for k in predictions.select("model", "dataset", "protocol").unique().iter_rows()} - covered
    if stray:
        raise UserError(
            f"{folder / 'predictions.parquet'}: predictions of {', '.join(f'{m} on {d}' for m, d, _ in sorted(stray))} "
            "have no evaluation in run.json"
        )
    return store


def recorded_settings(e: dict, folder: Path) -> dict:
    """An evaluation's resolved settings as its run.json records them (`settings`), or, in a record from before
    they were kept whole, made from its parts, with settings the code did not have yet at their neutral value
    (provenance.complete)."""
    if e.get("settings"):
        return provenance.complete(e["settings"])
    parts = {
        "model": e["model"],
        "dataset": e["dataset"],
        "protocol": e["protocol"],
        "train": e.get("train") or {},
        "overrides": e.get("overrides") or {},
        "evaluation": {k: v for k, v in (e.get("evaluation") or {}).items() if k in provenance.FOLD_SETTINGS},
        "encoding": e.get("encoding") or {},
    }
    if e.get("fold_recipes"):
        raise UserError(
            f"{folder / 'run.json'}: {e['model']} on {e['dataset']} trained folds with their own settings and the "
            "record is from before runs kept them whole; its settings cannot be recovered for the store"
        )
    if e.get("given_weights"):
        where = Path(e["given_weights"])
        parts["weights"] = provenance.weights_digest(where) if where.is_dir() else str(where)
    return provenance.complete(parts)


def from_runs(folders: list[Path], notes: list[str]) -> Store:
    """The entries of every run found; inside a folder of runs, a run that finished nothing yet (one still
    going) is passed over and said in `notes`, a run folder named on its own must have finished something."""
    store = Store()
    for folder, named in run_folders(folders):
        if not named and not (folder / "predictions.parquet").exists():
            notes.append(f"{folder.name}: no evaluation finished yet; left out")
            continue
        store = store.merge(from_run(folder, notes))
    return store
