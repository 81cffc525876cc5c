"""The instance cache: keyed by SOP Instance UID, atomic, capped with LRU eviction."""

from __future__ import annotations

import os
import time

import pydicom
import pytest
from pydicom.uid import generate_uid

from medimg_lab.archive import ArchiveError, ArchiveResponseError, InstanceCache
from tests.archive.conftest import incoming_files


def _instance(seeds, i: int) -> tuple[str, bytes]:
    """A real instance (the RLE MR sample) under a new SOP Instance UID."""
    ds = pydicom.dcmread(seeds["mr_rle"].files[0])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["cache test", str(i)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    from io import BytesIO

    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return str(ds.SOPInstanceUID), out.getvalue()


def test_put_and_get_by_sop_instance_uid(tmp_path, seeds):
    cache = InstanceCache(tmp_path)
    uid, data = _instance(seeds, 0)
    assert cache.put_bytes(data, source="test") == uid
    assert cache.get(uid).read_bytes() == data
    assert uid in cache and len(cache) == 1
    assert InstanceCache(tmp_path).get(uid).read_bytes() == data  # reopened


def test_least_recently_used_go_first_past_the_cap(tmp_path, seeds):
    items = [_instance(seeds, i) for i in range(5)]
    size = len(items[0][1])
    cache = InstanceCache(tmp_path, max_bytes=int(3.5 * size))
    for k, (_, data) in enumerate(items[:3]):
        cache.put_bytes(data, source="test")
        past = time.time() - 100 + k
        os.utime(cache.path_for(items[k][0]), (past, past))
    cache.get(items[0][0])  # the oldest is used again: it stays
    cache.put_bytes(items[3][1], source="test")
    cache.put_bytes(items[4][1], source="test")
    kept = {uid for uid, _ in items if uid in cache}
    assert kept == {items[0][0], items[3][0], items[4][0]}
    assert cache.size_bytes <= cache.max_bytes


def test_the_series_being_retrieved_is_never_evicted(tmp_path, seeds):
    items = [_instance(seeds, i) for i in range(3)]
    size = len(items[0][1])
    cache = InstanceCache(tmp_path, max_bytes=int(2.5 * size))
    keep = {uid for uid, _ in items}
    cache.put_bytes(items[0][1], source="test", keep=keep)
    cache.put_bytes(items[1][1], source="test", keep=keep)
    with pytest.raises(ArchiveError, match="more than the cache's cap") as caught:
        cache.put_bytes(items[2][1], source="test", keep=keep)
    assert "larger max_bytes=" in str(caught.value)
    assert items[0][0] in cache and items[1][0] in cache
    assert incoming_files(cache) == []


def test_a_part_that_is_not_dicom_is_not_kept(tmp_path):
    cache = InstanceCache(tmp_path)
    with pytest.raises(ArchiveResponseError, match="not a DICOM instance"):
        cache.put_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 100, source="test")
    assert len(cache) == 0 and incoming_files(cache) == []


def test_a_failed_write_leaves_nothing(tmp_path):
    cache = InstanceCache(tmp_path)
    with pytest.raises(RuntimeError), cache.incoming() as (_, fh):
        fh.write(b"half an instance")
        raise RuntimeError("the connection dropped")
    assert incoming_files(cache) == [] and len(cache) == 0


@pytest.mark.parametrize("uid", ["../../etc/passwd", "1.2.3/4", "", "1." * 40, "1.2.a"])
def test_uids_that_are_not_uids_are_refused(tmp_path, uid):
    with pytest.raises(ArchiveResponseError, match="not a DICOM UID"):
        InstanceCache(tmp_path).path_for(uid)


def test_membership_of_a_non_uid_is_false(tmp_path):
    cache = InstanceCache(tmp_path)
    assert "../../etc/passwd" not in cache and 42 not in cache and "1.2.3" not in cache


def test_stale_parts_of_a_killed_process_are_removed_on_open(tmp_path):
    cache = InstanceCache(tmp_path)
    stale = tmp_path / ".incoming" / "part-killed.dcm"
    stale.write_bytes(b"half")
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".incoming" / "part-running.dcm"
    fresh.write_bytes(b"in progress")
    InstanceCache(tmp_path)
    assert not stale.exists() and fresh.exists()
    assert len(cache) == 0


@pytest.mark.parametrize("cap", [0, -1, 1.5, True, "1 GiB"])
def test_bad_cap_is_named(tmp_path, cap):
    with pytest.raises(
        ValueError, match="max_bytes must be a positive number of bytes"
    ):
        InstanceCache(tmp_path, max_bytes=cap)


def test_digest_for_provenance(tmp_path, seeds):
    import hashlib

    cache = InstanceCache(tmp_path)
    uid, data = _instance(seeds, 7)
    cache.put_bytes(data, source="test")
    assert cache.digest(uid) == hashlib.sha256(data).hexdigest()
