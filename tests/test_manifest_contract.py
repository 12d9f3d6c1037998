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
        ({"image_id": "a\nb", "image_uri": "a.png"}, "image_id 'a\\nb' holds control or formatting characters"),
        ({"image_id": "evil\u202egnp.exe", "image_uri": "a.png"},
         "image_id 'evil\\u202egnp.exe' holds control or formatting characters"),
        ({"image_id": "x" * 257, "image_uri": "a.png"}, "image_id is 257 characters long, over 256"),
        ({"image_id": "shop 12/front view é", "image_uri": "a.png"}, None),
    ],
)
def test_row_level_contract(row, problem):
    assert row_problem(row) == problem


def test_input_columns_that_collide_with_the_releases_own_are_refused():
    with pytest.raises(ManifestError, match=r"column\(s\) \['_row', 'sha256'\] collide with columns the release writes"):
        check_table(table(image_id=["a"], image_uri=["a.png"], sha256=["x"], _row=[7]))
    with pytest.raises(ManifestError, match=r"\['file_name', 'image'\] collide"):  # the datasets view's own
        check_table(table(image_id=["a"], image_uri=["a.png"], image=["x"], file_name=["y"]))


def test_every_table_of_a_release_is_made_of_record_fields():
    from dataclasses import fields

    from data_contracts.manifest import CONTRACT_COLUMNS, RESERVED_COLUMNS
    from data_contracts.records import (
        COMPONENT_TYPE,
        CONTENT_FIELDS,
        METRIC_COLUMNS,
        PUBLISHED_COLUMNS,
        QUARANTINE_COLUMNS,
        RECORD_SCHEMA,
        RELEASE_MEDIANS,
        TIMING_COLUMNS,
    )
    from tasks.measure import ComponentMetrics, EditMetrics

    record = set(RECORD_SCHEMA.names)
    for columns in (PUBLISHED_COLUMNS, QUARANTINE_COLUMNS, TIMING_COLUMNS, METRIC_COLUMNS, RELEASE_MEDIANS):
        assert set(columns) <= record and len(set(columns)) == len(columns), columns
    assert set(CONTENT_FIELDS) - {"extension"} <= record
    # What Measure computes is what the record holds, per image and per component.
    assert [f.name for f in fields(EditMetrics) if f.name != "components"] == [
        name for name in RECORD_SCHEMA.names if name in METRIC_COLUMNS]
    assert [f.name for f in fields(ComponentMetrics)] == [COMPONENT_TYPE.field(i).name for i in range(COMPONENT_TYPE.num_fields)]
    # Pass-through columns may not take a name the release writes.
    assert record - CONTRACT_COLUMNS - {"image_id"} <= RESERVED_COLUMNS
