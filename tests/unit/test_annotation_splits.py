"""Dev photos held out of annotated photos, and small faces left out of a detector's score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcli.vision.annotations import Annotation, ignore_under, split_every


def photo(name: str, boxes=((0, 0, 30, 30),)) -> Annotation:
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return Annotation(Path("images") / name, boxes, np.zeros(len(boxes), bool), None, name)


def test_every_nth_photo_by_sorted_name_is_held_out_whatever_the_file_order():
    names = [f"{i:02d}.jpg" for i in range(25)]
    shuffled = [photo(n) for n in np.random.default_rng(0).permutation(names)]
    train, dev = split_every(shuffled, 10)
    assert [a.image.name for a in dev] == ["00.jpg", "10.jpg", "20.jpg"]
    assert [a.image.name for a in train] == [a.image.name for a in shuffled if a.image.name not in
                                             {"00.jpg", "10.jpg", "20.jpg"}], "training photos keep the file order"
    again = split_every(list(reversed(shuffled)), 10)[1]
    assert [a.image.name for a in again] == ["00.jpg", "10.jpg", "20.jpg"]
    with pytest.raises(ValueError):
        split_every(shuffled, 1)


def test_faces_under_the_size_are_ignored_and_the_rest_kept():
    a = photo("a.jpg", [(0, 0, 30, 30), (0, 0, 30, 12), (5, 5, 24, 40)])
    a.ignore[0] = True
    (out,) = ignore_under([a], 20)
    assert out.ignore.tolist() == [True, True, True]
    (out,) = ignore_under([a], 12)
    assert out.ignore.tolist() == [True, False, False]
    assert a.ignore.tolist() == [True, False, False], "the input is not changed"
    assert out.n_faces == 2
