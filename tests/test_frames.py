"""Frame listing and image integrity, the way every adapter uses them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hsta_bench.data.frames import frame_number, image_problem, list_frames, name_for
from hsta_bench.data.sheets import parse_frame


@pytest.mark.parametrize(
    "name,number",
    [
        ("img46.jpg", 46),
        ("reg_img46.jpg", 46),
        ("006_05562.jpg", 5562),
        ("reg_image012345.bmp", 12345),
        ("175.jpg", 175),
        ("readme.txt", None),
    ],
)
def test_frame_number_is_the_trailing_number(name, number):
    assert frame_number(name) == number


def test_missing_frame_names_follow_the_folder(tmp_path):
    assert name_for({46: "img46.jpg", 48: "img48.jpg"}, 47) == "img47.jpg"
    assert name_for({5562: "006_05562.jpg", 5564: "006_05564.jpg"}, 5563) == "006_05563.jpg"
    assert name_for({12345: "reg_image012345.bmp"}, 12346) == "reg_image012346.bmp"


def test_list_frames_ignores_other_files(tmp_path):
    for name in ("img2.jpg", "img10.jpg", "Thumbs.db", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert list_frames(tmp_path) == {2: "img2.jpg", 10: "img10.jpg"}
    assert list_frames(tmp_path / "absent") == {}


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp"])
def test_intact_and_truncated_images(tmp_path, suffix):
    image = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    path = tmp_path / f"frame{suffix}"
    cv2.imwrite(str(path), image)
    assert image_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in image_problem(path)
    path.write_bytes(b"")
    assert image_problem(path) == "empty file"
    path.write_bytes(b"garbage" * 20)
    assert "bad header" in image_problem(path)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("46", (46, True)),
        ("46.0", (46, True)),
        ("/", (None, True)),
        (None, (None, True)),
        ("", (None, True)),
        ("4x", (None, False)),
    ],
)
def test_parse_frame(text, expected):
    assert parse_frame(text) == expected
