"""Every registered dataset, read from its synthetic stand-in through the adapter for the real layout."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from hsta_bench.data import get_source, list_sources, load_manifest, protocols
from hsta_bench.data.manifest import label_column, schema

ALL = list_sources()


@pytest.fixture(scope="module")
def manifests(cfg):
    return {name: load_manifest(name, cfg) for name in ALL}


def test_registry_has_the_benchmarks():
    assert {"casme2", "samm", "smic", "casme3", "megc2019-composite", "megc2019-flow"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_manifest_has_the_one_schema(manifests, name):
    frame = manifests[name].frame
    assert frame.schema == pl.Schema(schema())
    assert frame.height > 0
    assert frame["sample_id"].is_unique().all()
    assert frame["synthetic"].all() and manifests[name].synthetic
    assert (frame["dataset"] == name).all()


@pytest.mark.parametrize("name", ALL)
def test_standin_is_usable_and_labelled(manifests, name):
    m = manifests[name]
    assert m.usable.height == m.frame.height, [p.line() for p in m.problems if p.severity == "error"]
    source = get_source(name)
    for proto_name in source.protocols:
        proto = protocols.get(proto_name)
        labels = m.frame[label_column(proto_name)].drop_nulls()
        # every class of every protocol the dataset is scored under is represented
        assert set(labels.unique()) == set(proto.classes), proto_name
        usable = m.usable[label_column(proto_name)].drop_nulls()  # the classes the evaluation trains on
        assert set(usable.unique()) == set(proto.classes), proto_name
    assert m.frame["subject"].n_unique() >= 3


@pytest.mark.parametrize("name", [n for n in ALL if get_source(n).inputs == "frames"])
def test_frames_exist_and_bracket_the_apex(manifests, cfg, name):
    frame = manifests[name].frame
    for row in frame.iter_rows(named=True):
        assert row["onset"] <= row["apex"] <= row["offset"]
        assert row["frame_numbers"][0] == row["onset"] and row["frame_numbers"][-1] == row["offset"]
        assert row["apex"] in row["frame_numbers"]
        assert len(row["frame_files"]) == len(row["frame_numbers"])
        assert (Path(row["frame_dir"]) / row["frame_files"][0]).is_file()
        assert row["fps"] == cfg["datasets"][row["source"]]["fps"]


@pytest.mark.parametrize("name", [n for n in ALL if get_source(n).inputs == "flow"])
def test_flow_files_exist(manifests, name):
    frame = manifests[name].frame
    assert all(Path(p).is_file() for p in frame["flow_path"])
    assert all(Path(p).is_file() for p in frame["apex_image"])


def test_subject_ids_are_normalised(manifests):
    patterns = {"casme2": r"^sub\d{2}$", "samm": r"^\d{3}$", "smic": r"^s\d{2}$", "casme3": r"^spNO\.\d+$"}
    for name, pattern in patterns.items():
        assert manifests[name].frame["subject"].str.contains(pattern).all(), name


def test_composite_is_the_protocol_subset_of_its_parts(manifests):
    composite = manifests["megc2019-composite"].frame
    col = label_column("megc2019-composite")
    expected = sum(manifests[p].frame[col].drop_nulls().len() for p in ("casme2", "samm", "smic"))
    assert composite.height == expected
    assert set(composite["source"]) == {"casme2", "samm", "smic"}
    # the two samples the official list leaves out are in CASME II but not in the composite
    left_out = {"casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f"}
    assert left_out <= set(manifests["casme2"].frame["sample_id"])
    assert not left_out & set(composite["sample_id"])
