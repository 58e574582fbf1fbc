"""The nested protocol of a tune: which subjects each study may see, and the data its trials get.

The outer folds are the run's (evaluation.scheme: LOSO by default). They are dealt into `tune.outer_groups`
groups; the study of a group tunes on the subjects outside it, and every outer fold of the group is later
trained with the configuration that study chose. So no configuration is ever chosen with its test subject's
labels in view: the score of the outer run is a test score of "tune, then train". Inside a study, the
trials are scored on validation folds (subject k-fold over the study's own subjects), never on a test side.

A study's trials receive only their study's samples (`StudyData`): the held-out subjects' samples are not in
the object a trial gets, so no trial can touch them, whatever it does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import polars as pl
from pydantic import Field

from hsta_bench import config as config_mod
from hsta_bench.config import Bool, Int
from hsta_bench.engine import splits
from hsta_bench.engine.evaluate import subject_names
from hsta_bench.engine.train import Inputs
from hsta_bench.errors import UserError

if TYPE_CHECKING:
    from hsta_bench.engine.recipes import Recipe


@dataclass(frozen=True)
class AshaConfig:
    """configs/tune.yaml `asha`"""

    grace_period: Annotated[Int, Field(ge=1)] | Literal["auto"]
    reduction_factor: Annotated[Int, Field(ge=2)]


@dataclass(frozen=True)
class TuneConfig:
    """configs/tune.yaml (every setting's default, and what each means)"""

    trials: Annotated[Int, Field(ge=1)]
    metric: Literal["uf1", "uar", "acc"]
    outer_groups: Annotated[Int, Field(ge=2)] | Literal["per_fold"]
    inner_k: Annotated[Int, Field(ge=2)] | Literal["loso"]
    final: Bool
    startup_trials: Annotated[Int, Field(ge=1)] | Literal["auto"]
    seed: Int
    storage: str | None
    asha: AshaConfig

    def grace(self, budget: int, warmup: int = 0) -> int:
        """Epochs a trial trains before ASHA may stop it: auto is an eighth of the budget (MER validation
        scores after an epoch or two say little about where a configuration ends up), and at least one epoch
        past the recipe's `warmup` epochs (a trial judged during its warm-up has not yet trained at its lr)."""
        g = self.asha.grace_period
        return min(budget, max(1, budget // 8, warmup + 1)) if g == "auto" else min(g, budget)

    def startup(self, trials: int) -> int:
        if self.startup_trials == "auto":
            return min(10, max(2, trials // 3))
        return int(self.startup_trials)


def tune_config(cfg: dict, trials: int | None = None) -> TuneConfig:
    """The tune section, typed and checked; `trials` (from --trials) replaces its trial count."""
    tc = config_mod.typed(TuneConfig, cfg["tune"], "tune")
    if trials is not None:
        tc = replace(tc, trials=trials)
    if tc.trials < 1:  # --trials (the section's own is checked by its type)
        raise UserError(f"--trials {tc.trials}: at least one trial per study")
    return tc


@dataclass(frozen=True)
class Study:
    index: int
    name: str  # g<i> for a group of outer folds, `all` for the final study
    outer_folds: tuple[str, ...]  # the outer folds whose configuration this study chooses
    held_out: tuple[str, ...]  # subjects it never sees: the test subjects of those folds
    subjects: tuple[str, ...]  # subjects it tunes on

    def describe(self) -> dict:
        return {
            "name": self.name,
            "outer_folds": list(self.outer_folds),
            "held_out": list(self.held_out),
            "subjects": list(self.subjects),
        }


def studies(plan, tc: TuneConfig) -> list[Study]:
    """The studies of a tune over `plan`'s outer folds: one per group of outer folds, then `all`."""
    subjects = subject_names(plan.manifest)
    everyone = sorted(set(subjects.tolist()))
    n = len(plan.folds)
    if tc.outer_groups == "per_fold":
        groups = n
    else:
        assert isinstance(tc.outer_groups, int)  # tune_config allows per_fold or a whole number only
        groups = min(tc.outer_groups, n)
    if groups < 2:
        raise UserError(f"{plan.dataset}: {n} outer fold(s); a nested tune needs at least two")
    order = np.random.default_rng([tc.seed, 7]).permutation(n)
    out = []
    for g in range(groups):
        folds = [plan.folds[i] for i in sorted(order[g::groups].tolist())]
        held = sorted(set(subjects[np.concatenate([f.test for f in folds])].tolist()))
        out.append(
            Study(g, f"g{g}", tuple(f.name for f in folds), tuple(held), tuple(s for s in everyone if s not in held))
        )
    if tc.final:
        out.append(Study(groups, "all", (), (), tuple(everyone)))
    for s in out:
        if tc.inner_k == "loso":
            inner = len(s.subjects)
        else:
            assert isinstance(tc.inner_k, int)  # tune_config allows loso or a whole number only
            inner = tc.inner_k
        if len(s.subjects) < 2 or inner > len(s.subjects):
            raise UserError(
                f"tune.inner_k={tc.inner_k}: study {s.name} has {len(s.subjects)} subject(s) to tune on "
                f"(lower tune.inner_k or tune.outer_groups)"
            )
    return out


@dataclass
class StudyData:
    """Everything a study's trials need, restricted to its own subjects' samples."""

    study: Study
    model: str
    dataset: str
    protocol: str
    classes: tuple[str, ...]
    recipe: Recipe  # the base every sampled point is applied to
    inputs: Inputs  # over the study's samples only
    y: np.ndarray
    subjects: np.ndarray
    sample_ids: np.ndarray
    folds: list  # splits.Fold with train and val sides (no test side)
    metric: str
    cpus: float
    gpus: float = 0.0  # a trial's share of a GPU (what Ray grants it; engine/device.py)


def study_data(plan, study: Study, tc: TuneConfig, cpus: float, gpus: float = 0.0) -> StudyData:
    subjects = subject_names(plan.manifest)
    rows = np.flatnonzero(np.isin(subjects, list(study.subjects)))
    if set(subjects[rows].tolist()) & set(study.held_out):  # by construction; checked because it is the point
        raise splits.LeakageError(f"study {study.name}: a held-out subject is among its samples")
    mine = subjects[rows]
    if tc.inner_k == "loso":
        scheme, k = "loso", 0
    else:
        assert isinstance(tc.inner_k, int)  # tune_config allows loso or a whole number only
        scheme, k = "kfold", tc.inner_k
    inner = splits.make_folds(mine, scheme, k, 0, tc.seed + study.index)
    # the inner folds' held-out side is validation: a study has no test side
    folds = [splits.Fold(f.index, f.name, f.train, f.test, np.zeros(0, dtype=int)) for f in inner]
    inputs = Inputs({kind: array[rows] for kind, array in plan.inputs.arrays.items()}, encoding=plan.inputs.encoding)
    return StudyData(
        study,
        plan.model,
        plan.dataset,
        plan.protocol,
        plan.classes,
        plan.recipe,
        inputs,
        plan.y[rows],
        mine,
        plan.manifest["sample_id"].to_numpy()[rows].astype(str),
        folds,
        tc.metric,
        cpus,
        gpus,
    )


def splits_table(plan, items: list[StudyData]):
    """splits.parquet of a tune: study, fold, subject, sample_id, role (train | val | held_out)."""
    subjects = subject_names(plan.manifest)
    ids = plan.manifest["sample_id"].to_numpy().astype(str)
    parts = []
    for data in items:
        for fold in data.folds:
            for role, rows in (("train", fold.train), ("val", fold.val)):
                parts.append(
                    pl.DataFrame(
                        {
                            "study": data.study.name,
                            "fold": fold.name,
                            "subject": data.subjects[rows],
                            "sample_id": data.sample_ids[rows],
                            "role": role,
                        }
                    )
                )
        held = np.isin(subjects, list(data.study.held_out))
        parts.append(
            pl.DataFrame(
                {
                    "study": data.study.name,
                    "fold": "-",
                    "subject": subjects[held],
                    "sample_id": ids[held],
                    "role": "held_out",
                }
            )
        )
    schema = {"study": pl.Utf8, "fold": pl.Utf8, "subject": pl.Utf8, "sample_id": pl.Utf8, "role": pl.Utf8}
    if not parts:
        return pl.DataFrame(schema=schema)
    # polars types cast's mapping as keyed by a union of column names, selectors and types: Mapping's key type is
    # invariant, so no dict keyed by str fits it
    return pl.concat([p.cast(schema) for p in parts])  # type: ignore[arg-type]
