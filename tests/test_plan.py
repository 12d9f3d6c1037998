"""Planning: partitions cut so that every worker has work from the first second."""

import pyarrow as pa
import pytest

from tasks.plan import partition_bounds, split_partitions


@pytest.mark.parametrize("rows, size, workers", [
    (1, 64, 2), (3, 64, 16), (7, 3, 2), (35, 64, 2), (36, 64, 2), (70, 64, 2), (129, 64, 2), (1000, 64, 2),
    (1000, 25, 3), (5, 64, 1), (200, 64, 1),
])
def test_row_ranges_cover_the_rows_once_within_partition_size(rows, size, workers):
    bounds = partition_bounds(rows, size, workers)
    assert [start for start, _ in bounds] == [0, *(stop for _, stop in bounds[:-1])] and bounds[-1][1] == rows
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= size and max(sizes) - min(sizes) <= 1  # balanced: no small tail partition
    assert len(bounds) >= min(workers, rows)  # every worker gets a partition, whatever the size
    if rows >= workers:
        assert len(bounds) % workers == 0  # and none idles while another does a last one alone


def test_a_small_manifest_still_feeds_every_worker():
    assert partition_bounds(35, 64, 2) == [(0, 18), (18, 35)]  # was one partition of 35: one core idled
    assert partition_bounds(7, 64, 4) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert partition_bounds(200, 64, 1) == [(0, 50), (50, 100), (100, 150), (150, 200)]  # one worker: by size
    assert partition_bounds(0, 64, 2) == []


def test_the_partition_column_is_kept_as_it_is():
    table = pa.table({"image_id": [f"r{i}" for i in range(6)], "partition": ["a", "b", "a", None, "b", "a"]})
    groups = split_partitions(table, partition_size=1, workers=8)
    assert [(label, part.column("image_id").to_pylist()) for label, part in groups] == [
        ("a", ["r0", "r2", "r5"]), ("b", ["r1", "r4"]), ("(none)", ["r3"])]


def test_without_a_partition_column_rows_keep_their_order():
    table = pa.table({"image_id": [f"r{i}" for i in range(9)]})
    groups = split_partitions(table, partition_size=64, workers=2)
    assert [label for label, _ in groups] == ["rows 0-4", "rows 5-8"]
    assert [i for _, part in groups for i in part.column("image_id").to_pylist()] == [f"r{i}" for i in range(9)]
