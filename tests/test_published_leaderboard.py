"""The published leaderboard (leaderboard/README.md) and its committed store (leaderboard/results/): every row
carries what it ran, and its command runs that again. (That the page is what `make leaderboard` makes of the
store: test_leaderboard.py.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hsta_bench import config
from hsta_bench.cli.run import evaluation_sets
from hsta_bench.engine import provenance
from hsta_bench.engine.evaluate import plan
from hsta_bench.leaderboard import published, recipe_diff, settings, tables
from hsta_bench.leaderboard import store as store_mod

REPO = Path(__file__).resolve().parents[1]
STORE = Path("leaderboard/results")  # as the page's commands name it: relative to the repository
PAGE = REPO / "leaderboard" / "README.md"


@pytest.fixture(scope="module")
def committed():
    return store_mod.read(REPO / STORE)


def _options(command: str) -> dict:
    tokens = shlex.split(command)
    assert tokens[:2] == ["hsta-bench", "run"], command
    out: dict = {"--set": [], "--data-root": []}
    for option, value in zip(tokens[2::2], tokens[3::2]):
        if option in ("--set", "--data-root"):
            out[option].append(value)
        else:
            assert option not in out, f"{option} twice in {command}"
            out[option] = value
    return out


def test_every_settings_file_hashes_to_its_key_and_every_real_row_has_one(committed):
    """store.read checks each settings/KEY.yaml against its name; every real row has its settings."""
    real = [e for e in committed.entries if not e["synthetic"]]
    assert real
    assert all(e["config_key"] in committed.settings for e in real)
    for key, resolved in committed.settings.items():
        assert provenance.key(resolved) == key


def test_every_real_rows_command_resolved_as_printed_gives_its_config_key(committed, monkeypatch):
    """Resolved without training, from the repository as the README says to run it, a real row's command (as
    the page prints it) plans an evaluation with the row's config key. Rows whose data root or released weights
    are not beside the repository (../shared, ../STSTNet) are passed over, and said."""
    monkeypatch.chdir(REPO)
    checked, absent = [], []
    for e in (e for e in committed.entries if not e["synthetic"]):
        command = store_mod.reproduce(e, f"{STORE}/settings")
        o = _options(command)
        paths = [r.split("=", 1)[1] for r in o["--data-root"]] + ([o["--weights"]] if "--weights" in o else [])
        if not all(Path(p).exists() for p in paths):
            absent.append(f"{e['entry']} ({', '.join(paths)})")
            continue
        weights = Path(o["--weights"]) if "--weights" in o else None
        cfg = config.load(
            Path(o["--config"]), o["--set"] + evaluation_sets(False, weights, False, None), o["--data-root"]
        )
        p = plan(o["--model"], o["--dataset"], cfg, o.get("--preset"), prepare=False)
        assert p.key() == e["config_key"], f"{e['entry']}: `{command}` plans {p.key()}, not {e['config_key']}"
        checked.append(e["entry"])
    if not checked:
        pytest.skip(f"no real row's data is beside the repository: {'; '.join(absent)}")
    print(f"{len(checked)} real rows resolved to their keys; passed over (data absent): {absent or 'none'}")


def _page_commands(text: str) -> list[str]:
    return re.findall(r"reproduce: `([^`]+)`", text)


def test_the_page_names_no_machines_path_and_no_command_twice(committed):
    """No absolute path on the page, and no command printed for rows of two different config keys (each
    provenance line gives its row's key and its command)."""
    text = PAGE.read_text(encoding="utf-8")
    absolute = re.findall(r"(?<![\w.~-])/(?:work|home|Users|tmp|root|mnt|opt|data|var)/[^\s`)|]*", text)
    assert not absolute, f"absolute paths on the published page: {absolute[:5]}"
    printed = re.findall(r"config key `([0-9a-f]+)`.*reproduce: `([^`]+)`", text)
    assert len(printed) == len(committed.entries) == len(_page_commands(text))
    keys_of: dict[str, set] = {}
    for key, command in printed:
        assert not any(token.startswith("/") for token in shlex.split(command)), command
        keys_of.setdefault(command, set()).add(key)
    twice = {command: keys for command, keys in keys_of.items() if len(keys) > 1}
    assert not twice, f"one command printed for rows of different settings: {twice}"


def test_a_ranked_table_holds_only_rows_trained_here_at_todays_recipe(committed):
    cfg = config.shipped()
    s = settings(cfg)
    built = tables.build(
        committed,
        published.read(published.default_path(s), cfg),
        s,
        lambda e: recipe_diff.describe(e, committed.settings.get(e["config_key"]), cfg),
    )
    real = [t for t in built if not t.synthetic]
    assert {t.kind for t in real} >= {"recipe", "other", "weights"}
    for t in real:
        for row in t.rows:
            described = row.entry["described"]
            given = row.entry["selection"] == "given"
            assert (t.kind == "weights") == given
            assert (t.kind == "recipe") == (described.at_recipe and not given), (t.kind, row.entry["entry"])
    budget = [r for t in real for r in t.rows if r.entry["model"] == "htnet"]
    assert budget and all("epochs=3 (recipe: 800)" in r.entry["described"].text() for r in budget)
