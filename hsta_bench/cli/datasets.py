"""`hsta-bench datasets list | check | synth`: the benchmarks as distributed, and their stand-ins."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from hsta_bench.cli.options import (
    ConfigFile,
    DataRoots,
    Json,
    Sets,
    chosen_datasets,
    err,
    load_config,
    out,
    print_table,
)
from hsta_bench.errors import UserError

app = typer.Typer(help="List, check, synthesize, prepare and export the MER datasets.", no_args_is_help=True)

Names = Annotated[list[str] | None, typer.Argument(metavar="NAME", help="Dataset names (see `datasets list`).")]
AllDatasets = Annotated[bool, typer.Option("--all", "--all-datasets", help="Every registered dataset.")]

SEVERITY_STYLE = {"error": "bold red", "repaired": "yellow", "warning": "cyan"}


@app.command("list")
def list_(config: ConfigFile = None, sets: Sets = None, data_roots: DataRoots = None, as_json: Json = False) -> None:
    """The registered datasets, what they provide, their protocols and where their data comes from."""
    from hsta_bench.data import get_source, list_sources

    cfg = load_config(config, sets, data_roots)
    rows = []
    for name in list_sources():
        source = get_source(name)
        root = cfg["datasets"][name].get("root")
        rows.append(
            {
                "name": name,
                "title": source.title,
                "inputs": source.inputs,
                "protocols": list(source.protocols),
                "built_from": list(source.parts),
                "root": str(root) if root else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="datasets", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("title", "inputs", "protocols", "data"):
        table.add_column(column)
    for r in rows:
        data = r["root"] or ("from " + ", ".join(r["built_from"]) if r["built_from"] else "synthetic stand-in")
        table.add_row(r["name"], r["title"], r["inputs"], ", ".join(r["protocols"]), data)
    print_table(table)


@app.command()
def check(
    names: Names = None,
    all_: AllDatasets = False,
    data_roots: DataRoots = None,
    sets: Sets = None,
    config: ConfigFile = None,
    as_json: Json = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on any problem, repaired ones and warnings too.")
    ] = False,
) -> None:
    """Read datasets as distributed; print counts per class and subject, and every problem found.

    Exit 0: every sample usable (after the listed repairs); 1: some is not (--strict: any problem); 2: unreadable.
    """
    from hsta_bench.data import get_source, load_manifest
    from hsta_bench.data.check import passed, summarize

    chosen = chosen_datasets(names, all_)
    cfg = load_config(config, sets, data_roots)
    results, code = [], 0
    for name in chosen:
        try:
            with err.status(f"reading {name}"):
                manifest = load_manifest(name, cfg, announce=lambda msg: err.print(msg, markup=False))
        except UserError as exc:
            if len(chosen) == 1:
                raise
            err.print(Text(f"error: {exc}", style="bold red"))
            results.append({"dataset": name, "error": str(exc)})
            code = 2
            continue
        summary = summarize(manifest, get_source(name).protocols)
        ok = passed(summary, strict)
        summary["passed"] = ok
        results.append(summary)
        code = max(code, 0 if ok else 1)
        if not as_json:
            _render(summary, strict)
    if as_json:
        print(json.dumps(results[0] if len(chosen) == 1 else results, indent=2))
    raise typer.Exit(code)


def _render(s: dict, strict: bool) -> None:
    head = Text(f"{s['dataset']}", style="bold")
    head.append(f"  {s['root']}", style="dim")
    if s["synthetic"]:
        head.append("  [synthetic stand-in]", style="magenta")
    out.print(head)
    out.print(f"  {s['samples']} samples, {s['usable']} usable, {s['subjects']} subjects")
    table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
    table.add_column("  labels")
    table.add_column("counts")
    table.add_column("total", justify="right")
    table.add_row("  emotion as written", " · ".join(f"{k} {v}" for k, v in s["emotions"].items()), str(s["samples"]))
    for proto, counts in s["classes"].items():
        table.add_row(f"  {proto}", " · ".join(f"{k} {v}" for k, v in counts.items()), str(sum(counts.values())))
    print_table(table)
    if len(s["per_source"]) > 1:
        out.print(
            "  per source: "
            + " · ".join(f"{k} {v['samples']} ({v['subjects']} subjects)" for k, v in s["per_source"].items())
        )
    out.print(Text("  per subject: " + " · ".join(f"{k} {v}" for k, v in s["per_subject"].items())))
    if s["repairs"]:
        out.print("  repairs applied: " + ", ".join(f"{k} {v}" for k, v in s["repairs"].items()))
    for p in s["problems"]:
        who = f"{p['sample_id']}: " if p["sample_id"] else ""
        line = Text(f"  {p['severity']}: ", style=SEVERITY_STYLE[p["severity"]])
        line.append(f"{p['where']}: {who}{p['message']}")
        out.print(line, soft_wrap=True)
    counts = s["problem_counts"]
    if s["passed"]:
        out.print(
            Text(
                f"  OK: every sample usable ({counts['repaired']} repaired, {counts['warning']} warnings)",
                style="green",
            )
        )
    elif counts["error"]:
        out.print(Text(f"  FAILED: {counts['error']} error(s), {s['unusable']} unusable sample(s)", style="bold red"))
    else:
        out.print(Text(f"  FAILED (--strict): {sum(counts.values())} problem(s)", style="bold red"))
    out.print()


@app.command()
def synth(
    names: Names = None,
    size: Annotated[str, typer.Option("--size", help="small (a few subjects) or full (the real numbers).")] = "small",
    output: Annotated[
        Path | None, typer.Option("--output", help="Write NAME/ trees here instead of the stand-in cache.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite stand-ins that are already there.")] = False,
    sets: Sets = None,
    config: ConfigFile = None,
) -> None:
    """Write deterministic synthetic stand-ins in the official layouts (frames + sheets, SMIC as folders).

    Without --output they go where every command looks for a dataset that has no --data-root.
    """
    from hsta_bench.data import get_source
    from hsta_bench.data.synth import MARKER, is_synthetic, standin_path, write_standin

    cfg = load_config(config, sets, None)
    chosen = [n for n in chosen_datasets(names, False, default_all=True) if not get_source(n).parts]
    if names:
        for name in names:
            if get_source(name).parts:
                err.print(f"{name} is built from {', '.join(get_source(name).parts)}: writing those")
                chosen += [p for p in get_source(name).parts if p not in chosen]
    table = Table(title=f"synthetic stand-ins ({size})", title_justify="left")
    for column in ("dataset", "samples", "subjects", "seconds", "path"):
        table.add_column(column)
    for name in chosen:
        dest = (output / name) if output else standin_path(name, cfg, size)
        existed = is_synthetic(dest) and not force
        start = time.perf_counter()
        with err.status(f"writing {name}"):
            write_standin(name, cfg, dest, size, force=force)
        marker = json.loads((dest / MARKER).read_text())
        took = "already there" if existed else f"{time.perf_counter() - start:.1f}"
        table.add_row(name, str(marker["samples"]), str(marker["subjects"]), took, str(dest))
    print_table(table)


@app.command()
def prepare(
    names: Names = None,
    all_: AllDatasets = False,
    data_roots: DataRoots = None,
    sets: Sets = None,
    config: ConfigFile = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: preprocess.workers).")] = None,
    as_json: Json = False,
) -> None:
    """Turn datasets into the cached arrays models read (frames, special frames, flow, apex), once.

    Settings: preprocess.* (configs/preprocess.yaml), e.g. --set preprocess.flow.method=dis. Nothing changed: no work.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cfg = _preprocess_config(config, sets, data_roots, workers)
    from hsta_bench.preprocess import prepare as run_prepare

    reports = []
    for name in chosen_datasets(names, all_):
        with Progress(
            TextColumn(f"preparing {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task(name, total=None)
            report = run_prepare(
                name,
                cfg,
                progress=lambda done, total, t=task: bar.update(t, completed=done, total=total),
                announce=lambda msg: err.print(msg, markup=False),
            )
        reports.append(report.as_dict())
        if not as_json:
            _render_prepared(report)
    if as_json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))


def _preprocess_config(config, sets, data_roots, workers: int | None) -> dict:
    """The configuration, its preprocess settings checked: a mistaken one is one line before the pipeline
    (OpenCV, torch) is imported."""
    from hsta_bench.preprocess.settings import from_config

    extra = [f"preprocess.workers={workers}"] if workers is not None else []
    cfg = load_config(config, (sets or []) + extra, data_roots)
    from_config(cfg)
    return cfg


def _render_prepared(report) -> None:
    head = Text(report.dataset, style="bold")
    if report.synthetic:
        head.append("  [synthetic stand-in]", style="magenta")
    out.print(head)
    if not report.computed:
        out.print(
            Text(f"  cache hit: every input already prepared, nothing computed ({report.seconds:.2f} s)", style="green")
        )
    else:
        out.print(
            f"  computed {', '.join(report.computed)} with {report.workers} worker(s) in {report.seconds:.1f} s; "
            f"{report.face_crop}",
            soft_wrap=True,
        )
    for k in report.kinds:
        state = "cached" if k.cached else "new"
        out.print(Text(f"  {k.kind:8s} {k.samples} x {tuple(k.shape)} uint8  {state}  {k.path}"), soft_wrap=True)
    if report.landmarks:  # the regions kind: how many samples had no face, so the release's fixed points
        lm = report.landmarks
        out.print(
            Text(
                f"  regions: landmarks by {lm['detector']} at {lm['at']} px; no face, the release's fallback "
                f"landmarks used, in {lm['fallback']} of {lm['samples']} samples",
                style="yellow" if lm["fallback"] else "",
            ),
            soft_wrap=True,
        )
    for e in report.excluded:
        out.print(Text(f"  excluded: {e['where']}: {e['sample_id']}: {e['reason']}", style="yellow"), soft_wrap=True)
    for n in report.notes:
        out.print(Text(f"  note: {n['sample_id']}: {n['note']}", style="cyan"), soft_wrap=True)
    out.print()


EXPORTABLE = ("megc2019-composite",)


@app.command()
def export(
    name: Annotated[str, typer.Argument(metavar="NAME", help=f"What to export: {', '.join(EXPORTABLE)}.")],
    output: Annotated[Path, typer.Option("--output", help="A new (or empty) folder to write.")],
    data_roots: DataRoots = None,
    sets: Sets = None,
    config: ConfigFile = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: preprocess.workers).")] = None,
    as_json: Json = False,
) -> None:
    """Make a precomputed release's files from your own copies of the datasets.

    megc2019-composite: the composite's CSV, 28x28 onset->apex flow images and 224x224 apex crops, named and
    encoded as released, from --data-root casme2=... samm=... smic=... (any of them); read it back with
    --data-root megc2019-flow=OUTPUT, or run any release's own code on it.
    """
    if name not in EXPORTABLE:
        raise UserError(f"datasets export: {name!r} cannot be exported (exportable: {', '.join(EXPORTABLE)})")
    cfg = _preprocess_config(config, sets, data_roots, workers)
    from hsta_bench.preprocess.export import export as run_export

    report = run_export(cfg, output, announce=lambda msg: err.print(msg, markup=False))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    out.print(
        f"{name}: {len(report.written)} samples written to {report.output} in {report.seconds:.1f} s; "
        f"{report.face_crop}",
        soft_wrap=True,
    )
    for part in report.not_given:
        out.print(Text(f"  not given: {part} (no --data-root {part}=PATH): none of its samples", style="yellow"))
    for e in report.missing:
        out.print(Text(f"  not made: {e['where']}: {e['sample_id']}: {e['reason']}", style="yellow"), soft_wrap=True)
