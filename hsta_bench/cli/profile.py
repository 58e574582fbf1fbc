"""`hsta-bench profile`: time each model's attention at its real token shapes with each kernel, and each
model's inference and training step, against the matrix-product ceiling measured in the same run.

The measurements live in hsta_bench/profiling/ (session.py runs them, report.py writes them out).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from hsta_bench.cli.options import ConfigFile, Imports, Json, Sets, err, import_models, load_config, out, print_table
from hsta_bench.cli.run import ModelNames, Output, Preset, check_names

Backends = Annotated[
    list[str] | None,
    typer.Option(
        "--backend",
        metavar="KERNEL",
        help=(
            "naive, sdpa, flex, or sdpa pinned to one implementation: sdpa-flash, sdpa-efficient, sdpa-cudnn, "
            "sdpa-math (repeatable; default: configs/profile.yaml for the device)."
        ),
    ),
]
Dtypes = Annotated[
    list[str] | None, typer.Option("--dtype", metavar="DTYPE", help="fp32, bf16 or fp16 (repeatable; default fp32).")
]
Device = Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="cpu (default) or cuda.")]
Batch = Annotated[int | None, typer.Option("--batch", metavar="N", help="Samples per call (default 2).")]
Repeats = Annotated[
    int | None,
    typer.Option("--repeats", metavar="N", help="Calls timed per measurement; the median is reported (default 5)."),
]


def profile(
    model: ModelNames = None,
    backend: Backends = None,
    dtype: Dtypes = None,
    device: Device = None,
    preset: Preset = None,
    batch: Batch = None,
    repeats: Repeats = None,
    sets: Sets = None,
    config: ConfigFile = None,
    output: Output = Path("results"),
    imports: Imports = None,
    as_json: Json = False,
) -> None:
    """Profile attention kernels and models on this machine into OUTPUT/profile-ID/ (a report with a plot)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import_models(imports)
    cfg = load_config(config, sets, None)
    check_names(cfg, preset or "paper", model or [])
    from hsta_bench.io import new_run_id  # the profiler (torch, matplotlib): once the names are right
    from hsta_bench.profiling import report, session

    settings = session.settings(cfg, preset or "paper", model, backend, dtype, device, batch, repeats)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("reading each model's attention", total=None)
        first = True

        def step(description: str) -> None:
            nonlocal first
            if not first:
                progress.advance(task)
            first = False
            progress.update(task, description=description[:70])

        result = session.run(settings, step, lambda n: progress.update(task, total=n))
    folder = Path(output) / f"profile-{new_run_id()}"
    files = report.write(result, folder)
    took = time.perf_counter() - started
    if as_json:
        document = {**report.document(result, files), "folder": str(folder), "seconds": round(took, 1)}
        out.print_json(json.dumps(document, default=str))
        return
    for line in report.header(result):
        out.print(line, markup=False, soft_wrap=True)
    for table in report.tables(result):
        print_table(table)
    out.print("\n[bold]Findings[/bold]")
    for line in report.findings_text(result, brief=True):
        out.print(line, markup=False, soft_wrap=True)
    out.print(f"\nreport: {folder / files['report']}  (profiled in {int(took // 60)} min {took % 60:.0f} s)")
