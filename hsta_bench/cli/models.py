"""`hsta-bench models`: every registered model, where it comes from, the inputs it reads, its size and the recipe
a run trains it with (resolved as `run` resolves it: recipe, preset and the command line's --set)."""

from __future__ import annotations

import json

from rich.table import Table

from hsta_bench.cli.options import ConfigFile, Imports, Json, Sets, import_models, load_config, print_table
from hsta_bench.cli.run import Preset, check_names


def models(
    preset: Preset = None,
    sets: Sets = None,
    config: ConfigFile = None,
    imports: Imports = None,
    as_json: Json = False,
) -> None:
    """The registered models: origin, inputs, parameters (3 classes) and the recipe a run trains each with."""
    import_models(imports)
    cfg = load_config(config, sets, None)
    preset = preset or "paper"
    check_names(cfg, preset, [])
    rows = describe(cfg, preset)
    if as_json:
        print(json.dumps({"preset": preset, "models": rows}, indent=2))
        return
    table = Table(
        title=f"{len(rows)} models (parameters for 3 classes; recipe under --preset {preset})", title_justify="left"
    )
    for column in ("model", "from", "inputs", "parameters", "recipe", "trains with"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for r in rows:
        inputs = ", ".join(f"{k} {'x'.join(map(str, shape))}" for k, shape in r["inputs"].items())
        table.add_row(
            r["model"], r["from"], inputs, f"{r['parameters']:,}", f"{r['recipe']}: {r['origin']}", r["trains_with"]
        )
    print_table(table)


def describe(cfg: dict, preset: str) -> list[dict]:
    """One dict per registered model: name, from, inputs, parameters, recipe, origin, trains_with, train."""
    from dataclasses import asdict

    from hsta_bench.engine.recipes import recipe, recipe_name
    from hsta_bench.models import count_parameters, list_models, meta_model
    from hsta_bench.models.registry import origin

    rows = []
    for name in list_models():
        rec = recipe(name, cfg, preset)
        net = meta_model(name, 3, rec.overrides)  # on the meta device: no memory, no initialisation
        t = rec.train
        own = recipe_name(name, cfg)
        rows.append(
            {
                "model": name,
                "from": origin(name),
                "inputs": {k: list(shape) for k, shape in net.inputs.items()},
                "parameters": count_parameters(net),
                "recipe": rec.source,
                "origin": str((cfg["models"].get(own) or {}).get("origin") or "ours") if own else "the defaults",
                "trains_with": (
                    f"{t.optimizer} lr {t.lr:g}, batch {t.batch_size}, {t.epochs} epochs, {t.selection} epoch"
                ),
                "train": asdict(t),
            }
        )
    return rows
