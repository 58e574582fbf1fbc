"""The record a run keeps of itself, run.json (runner.py writes it at each stage), as typed attributes.

`RunRecord.to_dict()` is the JSON object of run.json: every field under its own name, a field that is None
and marked optional left out (a run writes `finished` only once it has finished), and what the record does
not know (what a caller adds: a tune's outer run records `tune`) kept as it was, after `status`. A record
read back (`--resume`) writes its keys in the order it read them, new ones after, as a dict updated in place
would. `Record` is the base a tune's record (tune.json) can share.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import TypeAdapter, ValidationError

from hsta_bench.errors import UserError
from hsta_bench.io import read_record, write_json

R = TypeVar("R", bound="Record")


def optional(default: Any = None) -> Any:
    """A field left out of the JSON while it is None (it appears once the run gets that far)."""
    return field(default=default, metadata={"optional": True})


@dataclass(kw_only=True)
class Record:
    """A JSON record written whole (io.write_json: atomically) and read back to be resumed.

    FILE: its name in its folder; WHAT: what it is, for the error about a damaged one; EXTRA_AFTER: the field
    after which the keys it does not know (`extra`) are written."""

    FILE: ClassVar[str]
    WHAT: ClassVar[str]
    EXTRA_AFTER: ClassVar[str]

    extra: dict = field(default_factory=dict)
    _keys: list[str] = field(default_factory=list, init=False, repr=False, compare=False)  # the order read back

    def to_dict(self) -> dict:
        """The JSON object of the record (nested values are the record's own, not copies)."""
        canonical: dict = {}
        for f in fields(self):
            if f.name in ("extra", "_keys"):
                continue
            value = getattr(self, f.name)
            if not (value is None and f.metadata.get("optional")):
                canonical[f.name] = value
            if f.name == self.EXTRA_AFTER:
                canonical.update(self.extra)
        out = {k: canonical[k] for k in self._keys if k in canonical}
        out.update((k, v) for k, v in canonical.items() if k not in out)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Any, source: Path | str) -> R:
        """The record of `data` (a parsed JSON object); anything malformed is one UserError line naming
        `source`."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: not a {cls.WHAT} (a JSON object expected, found {type(data).__name__})")
        hints = typing.get_type_hints(cls)
        known, kwargs = set(), {}
        for f in fields(cls):
            if f.name in ("extra", "_keys"):
                continue
            known.add(f.name)
            if f.name not in data:
                if f.metadata.get("optional"):
                    continue
                raise UserError(f"{source}: not a {cls.WHAT} (no `{f.name}`)")
            value = data[f.name]
            try:  # checked (strict: a bool is no number), kept as read: the record writes back what it read
                _adapter(hints[f.name]).validate_python(value, strict=True)
            except ValidationError:
                raise UserError(
                    f"{source}: not a {cls.WHAT} (`{f.name}` is {_shown(value)}, not {_hint_text(hints[f.name])})"
                ) from None
            kwargs[f.name] = value
        record = cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})
        record._keys = list(data)
        return record

    @classmethod
    def read(cls: type[R], folder: Path, option: str) -> R:
        """The record in `folder`, resumed with `option`: missing, unreadable or malformed is one line."""
        return cls.from_dict(read_record(folder, cls.FILE, option), Path(folder) / cls.FILE)

    def write(self, folder: Path) -> None:
        """Written whole: a reader sees the previous record or this one, never half."""
        write_json(self.to_dict(), Path(folder) / self.FILE)


@dataclass(kw_only=True)
class RunRecord(Record):
    """run.json. Written at `planning` (what the run is), at `running` (its evaluations, dispatch and
    trials) and at its end (`finished`, or `failed` / `interrupted` with what is `incomplete`); a resume
    adds an entry to `resumed` and keeps every field it read (an earlier `incomplete` stays as it was)."""

    FILE: ClassVar[str] = "run.json"
    WHAT: ClassVar[str] = "run record"
    EXTRA_AFTER: ClassVar[str] = "status"

    run_id: str
    created: str
    command: list[str]
    preset: str
    pairs: list[list[str]]  # (model, dataset)
    skipped: list[str]
    git_commit: str | None
    environment: dict
    imports: list[str] | None = optional()  # models/plugins.record: the --import modules a resume imports again
    model_origins: dict | None = optional()
    config: dict
    status: str  # planning, running, finished, failed, interrupted
    # (extra keys here)
    resumed: list[dict] | None = optional()  # at, command, git_commit, dispatch: one per --resume
    evaluations: list[dict] | None = optional()  # runner._evaluation, completed by runner._finish
    dispatch: dict | None = optional()  # the executor's description, fragments, node_checks, stop_seconds
    trials: list[dict] | None = optional()
    seconds: float | None = optional()  # dispatching, summed over the run and its resumes
    finished: str | None = optional()
    incomplete: list[str] | None = optional()  # "<model> on <dataset>"
    failed_trials: list[dict] | None = optional()  # trial, error (its last line)


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint)


def _hint_text(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
