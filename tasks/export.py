"""Training-ready views of a release, derived from `manifest.parquet` (which stays the contract).

- Hugging Face `datasets`: `images/metadata.parquet` (the published rows plus `file_name`) and a
  dataset card `README.md` whose `configs:` point at `images/`, so that
  `datasets.load_dataset(RELEASE, split="train")` gives an `Image` feature with every published
  column. Quarantined edits live in `quarantine/images/`, so they are not in the dataset.
- WebDataset (`output: {shards: webdataset}`): `webdataset/shard-000000.tar`, ... one sample per
  published row (`<key>.<image extension>` and `<key>.json`, the row's columns), in manifest
  order, and `webdataset/index.json` naming the shards. Tar headers carry no time or owner, so a
  rerun writes the same bytes.

Nothing here imports `datasets` or `webdataset`: the tests load the output with both.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import math
import posixpath
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.config import OutputConfig
from tasks.uris import join, read_bytes, write_bytes

IMAGES_DIR = "images"
HF_METADATA = f"{IMAGES_DIR}/metadata.parquet"
WEBDATASET_DIR = "webdataset"
TAR_BLOCK = 512
MAX_STEM = 64  # characters of the file name kept in a sample's key (with the extension, under 100)

DATASET_CARD = """---
configs:
- config_name: default
  data_files: "{images}/*"
---
# clean-clarify release {release_id}

The published rows of this release: {rows} images with the columns of `manifest.parquet`
(`{metadata}` says which file is which row). Quarantined rows are not part of it.

```python
from datasets import load_dataset
dataset = load_dataset("path/to/releases/{release_id}", split="train")  # images as an Image feature
```
"""


def write_training_views(release_uri: str, release_id: str, published: pa.Table, output: OutputConfig) -> dict:
    """Write the Hugging Face metadata and card, and the WebDataset shards when configured."""
    written = {"huggingface": write_hf_metadata(release_uri, release_id, published)}
    if output.shards == "webdataset":
        written["webdataset"] = write_webdataset_shards(release_uri, published, output.shard_max_rows,
                                                        output.shard_max_bytes)
    return written


def write_hf_metadata(release_uri: str, release_id: str, published: pa.Table) -> str:
    # `file_name` is relative to the metadata file's folder: that is how imagefolder pairs them.
    names = [posixpath.relpath(uri, IMAGES_DIR) for uri in published.column("output_uri").to_pylist()]
    metadata = published.append_column("file_name", pa.array(names, pa.string()))
    buffer = io.BytesIO()
    pq.write_table(metadata, buffer)
    write_bytes(join(release_uri, HF_METADATA), buffer.getvalue())
    card = DATASET_CARD.format(images=IMAGES_DIR, release_id=release_id, rows=published.num_rows, metadata=HF_METADATA)
    write_bytes(join(release_uri, "README.md"), card.encode())
    return HF_METADATA


def _json_ready(value):
    # Strict JSON: NaN (a metric that does not apply to the row) and infinities become null; what
    # JSON has no type for (timestamps, dates, decimals, bytes of pass-through columns) becomes text.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.time | dt.timedelta | decimal.Decimal):
        return str(value) if not isinstance(value, dt.date | dt.time) else value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


def sample_key(position: int, output_uri: str) -> str:
    """A WebDataset key: unique by position, readable by file name. WebDataset splits a member's
    name at the first dot of its base name, so the key has none."""
    stem = posixpath.splitext(posixpath.basename(output_uri))[0].replace(".", "_")
    # A USTAR member name holds 100 characters: the position keeps keys unique, the stem is a hint.
    return f"{position:08d}_{stem[:MAX_STEM]}"


def _tar_size(data_sizes: list[int]) -> int:
    """The size of a tar file holding members of these sizes: a header block each, the data padded to
    whole blocks, two end blocks, the whole padded to tar's 10 KiB records."""
    members = sum(TAR_BLOCK + math.ceil(size / TAR_BLOCK) * TAR_BLOCK for size in data_sizes)
    return math.ceil((members + 2 * TAR_BLOCK) / tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _close_shard(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            _add(tar, name, data)
    return buffer.getvalue()


def write_webdataset_shards(release_uri: str, published: pa.Table, max_rows: int, max_bytes: int) -> list[dict]:
    """Tar shards of at most `max_rows` rows and `max_bytes` bytes each (a row too large for that gets
    a shard of its own), in manifest order; returns the shards `webdataset/index.json` lists."""
    shards: list[dict] = []
    members: list[tuple[str, bytes]] = []
    rows_in_shard = 0

    def flush() -> None:
        nonlocal members, rows_in_shard
        name = f"{WEBDATASET_DIR}/shard-{len(shards):06d}.tar"
        data = _close_shard(members)
        write_bytes(join(release_uri, name), data)
        shards.append({"path": name, "rows": rows_in_shard, "bytes": len(data)})
        members, rows_in_shard = [], 0

    for position, row in enumerate(published.to_pylist()):
        key = sample_key(position, row["output_uri"])
        extension = posixpath.splitext(row["output_uri"])[1].lstrip(".").lower() or "bin"
        image = read_bytes(join(release_uri, row["output_uri"]), "published image")
        record = json.dumps(_json_ready(row), sort_keys=True, allow_nan=False).encode()
        sample = [(f"{key}.{extension}", image), (f"{key}.json", record)]
        grown = _tar_size([len(d) for _, d in (*members, *sample)])
        if members and (rows_in_shard + 1 > max_rows or grown > max_bytes):
            flush()
        members += sample
        rows_in_shard += 1
    if members:
        flush()
    index = {"rows": published.num_rows, "shards": shards}
    write_bytes(join(release_uri, WEBDATASET_DIR, "index.json"), json.dumps(index, indent=1).encode())
    return shards
