import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.manifest import ManifestError, check_table, read_manifest, row_problem


def table(**columns):
    return pa.table(columns)


def test_a_valid_manifest_with_every_optional_column_passes():
    check_table(pa.Table.from_pylist(
        [{"image_id": "a", "image_uri": "a.png", "mask_uri": "m.png", "boxes": [[0, 0, 4, 4]],
          "polygons": [[0, 0, 4, 0, 4, 4]], "removal": "text", "action": "remove", "detect": ["text"],
          "partition": "p", "caption": "kept"}]
    ))


def test_missing_required_column_is_named():
    with pytest.raises(ManifestError, match="required column 'image_uri' is missing"):
        check_table(table(image_id=["a"]))


def test_wrong_type_is_named_with_expected_type():
    with pytest.raises(ManifestError, match=r"column 'boxes' must be list<list<number>>, got string"):
        check_table(table(image_id=["a"], image_uri=["a.png"], boxes=["0,0,1,1"]))
    with pytest.raises(ManifestError, match=r"column 'image_id' must be string, got int64"):
        check_table(table(image_id=[1], image_uri=["a.png"]))


def test_duplicate_ids_are_listed():
    with pytest.raises(ManifestError, match=r"duplicated: 'a', 'c'"):
        check_table(table(image_id=["a", "b", "a", "c", "c"], image_uri=["x"] * 5))


def test_null_ids_name_the_rows():
    with pytest.raises(ManifestError, match=r"null or empty in rows 1, 2"):
        check_table(table(image_id=["a", None, ""], image_uri=["x"] * 3))


def test_every_problem_is_reported_at_once():
    with pytest.raises(ManifestError) as info:
        check_table(table(image_id=["a"], boxes=[1]))
    assert "image_uri" in str(info.value) and "boxes" in str(info.value)


def test_unreadable_manifest(tmp_path):
    (tmp_path / "m.parquet").write_text("not parquet")
    with pytest.raises(ManifestError, match="not a readable Parquet"):
        read_manifest(str(tmp_path / "m.parquet"))
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(str(tmp_path / "missing.parquet"))


def test_read_manifest_round_trip(tmp_path):
    pq.write_table(table(image_id=["a"], image_uri=["a.png"]), tmp_path / "m.parquet")
    assert read_manifest(str(tmp_path / "m.parquet")).num_rows == 1


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"image_uri": "a.png"}, None),
        ({"image_uri": ""}, "image_uri is empty"),
        ({"image_uri": "a.png", "removal": "watermark"}, "removal must be one of ['object', 'text'], got 'watermark'"),
        ({"image_uri": "a.png", "action": "erase"}, "action must be one of ['remove', 'blur'], got 'erase'"),
    ],
)
def test_row_level_contract(row, problem):
    assert row_problem(row) == problem
