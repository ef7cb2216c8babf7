"""Dev splits carved from the training file: contiguous blocks, k folds, a fixed shuffle."""

from __future__ import annotations

import dataclasses

import pytest

from dlcli.errors import DataError, RecipeError
from dlcli.tasks.held_out import HeldOutData, block, check, dev_source, split


def section(**fields) -> HeldOutData:
    return dataclasses.replace(HeldOutData(train="train.tsv"), **fields)


@pytest.mark.parametrize("n,folds", [(10, 3), (7, 7), (100, 10), (11, 2)])
def test_the_folds_tile_the_records_in_blocks_that_differ_by_at_most_one(n, folds):
    blocks = [block(n, folds, k) for k in range(folds)]
    assert blocks[0][0] == 0 and blocks[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    sizes = [hi - lo for lo, hi in blocks]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_a_fold_is_dev_and_the_other_folds_train_in_file_order():
    records = list(range(10))
    train, dev = split(records, None, section(folds=3, fold=1), "train.tsv")
    assert dev == [3, 4, 5]
    assert train == [0, 1, 2, 6, 7, 8, 9]
    folds = [split(records, None, section(folds=3, fold=k), "train.tsv")[1] for k in range(3)]
    assert sorted(sum(folds, [])) == records


def test_dev_from_train_holds_out_the_last_share_of_the_file():
    train, dev = split(list(range(20)), None, section(dev_from_train=0.1), "train.tsv")
    assert dev == [18, 19] and train == list(range(18))


def test_a_shuffled_order_is_fixed_and_still_a_partition():
    records = list(range(50))
    data = section(folds=5, fold=2, held_out_order="shuffled")
    train, dev = split(records, None, data, "train.tsv")
    assert split(records, None, data, "train.tsv") == (train, dev)  # the same records every run
    assert dev != records[20:30]
    assert sorted(train + dev) == records
    assert records == list(range(50))  # the caller's list is left in its order


def test_without_a_held_out_key_the_records_pass_through():
    train, dev = split([1, 2], [3], section(dev="dev.tsv"), "train.tsv")
    assert (train, dev) == ([1, 2], [3])


@pytest.mark.parametrize("fields,fragment", [
    ({"folds": 3, "fold": 3}, "data.fold: 3 is not a fold of 3"),
    ({"folds": 3, "dev": "dev.tsv"}, "names another"),
    ({"folds": 3, "dev_from_train": 0.1}, "data.dev_from_train"),
    ({"dev_from_train": 0.1, "dev": "dev.tsv"}, "data.dev_from_train: the recipe names data.dev too"),
])
def test_a_dev_split_named_twice_or_a_missing_fold_is_refused(fields, fragment):
    with pytest.raises(RecipeError, match=fragment):
        check(section(**fields))


def test_too_few_records_for_the_split_name_the_file():
    with pytest.raises(DataError, match="train.tsv: 2 records cannot make 3 folds"):
        split([1, 2], None, section(folds=3), "train.tsv")
    with pytest.raises(DataError, match="train.tsv: holding out 0.5 of 1 record leaves none"):
        split([1], None, section(dev_from_train=0.5), "train.tsv")


def test_messages_name_where_the_dev_records_came_from():
    assert dev_source(section(folds=10, fold=2)) == "fold 2 of 10 of train.tsv"
    assert dev_source(section(dev_from_train=0.1)) == "the last 0.1 of train.tsv"
    assert dev_source(section(dev="dev.tsv")) == "dev.tsv"
