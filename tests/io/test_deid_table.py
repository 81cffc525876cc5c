"""Every attribute of PS3.15 Table E.1-1 is de-identified, at any depth (issue 17).

A DICOM file is built that holds every attribute of the table (each with a
value valid for its VR, generated here, and every sequence with an item that
holds planted children), at depth 0 and inside sequences. It is exported, and
the test lists every attribute that survives with its original value: the
list must be empty.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import struct
from collections import OrderedDict

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from medimg_lab.io import _deid_table, deid
from medimg_lab.io.deid import (
    TABLE_EDITION,
    basic_profile_action,
    deidentified_bytes,
)

SALT = "table-test-salt"
# Reading the planted command elements (0000,eeee) makes pydicom guess at VR.
pytestmark = pytest.mark.filterwarnings("ignore:Expected implicit VR:UserWarning")
#: Sequences not in the table that carry the planted attributes one level down.
CARRIERS = (0x00081115, 0x00082218)  # ReferencedSeriesSequence, AnatomicRegion...
#: The repeating-group and private rows of the table, planted at these tags.
EXTRA = {
    0x50003000: "OB",  # Curve Data (50xx,xxxx)
    0x501E0010: "US",  # another curve group and element
    0x60003000: "OW",  # Overlay Data (60xx,3000)
    0x60024000: "LT",  # Overlay Comments (60xx,4000)
    0x00090010: "LO",  # a private creator
    0x00091001: "LO",  # its private attribute
    0x7FE10010: "LO",
    0x7FE11001: "OB",
}


@pytest.fixture(autouse=True)
def _fresh_salt_registry(monkeypatch):
    monkeypatch.setattr(deid, "_SEEN", OrderedDict())


def vr_of(tag: int) -> str:
    """The VR pydicom's dictionary gives, or one from the standard's name."""
    try:
        vr = dictionary_VR(tag)
    except KeyError:  # newer than pydicom's dictionary
        name = _deid_table.ATTRIBUTES[tag][1]
        return "SQ" if name.endswith("Sequence") else "LO"
    return vr.split(" or ")[0]


def value_for(vr: str, i: int):
    """A value valid for ``vr``, different for every ``i``, never a dummy."""
    day = dt.date(1950, 1, 1) + dt.timedelta(days=37 * i + 11)
    when = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=3607 * i + 61)
    text = {
        "AE": f"AET{i:05d}",
        "AS": f"{i % 98 + 1:03d}Y",
        "CS": f"PLANTED{i:05d}",
        "DA": day.strftime("%Y%m%d"),
        "DS": f"{i}.25",
        "DT": when.strftime("%Y%m%d%H%M%S.%f"),
        "IS": str(i + 7),
        "LO": f"Planted long string {i}",
        "LT": f"Planted long text {i}",
        "PN": f"Doe{i}^Jane^Q",
        "SH": f"Planted{i}",
        "ST": f"Planted short text {i}",
        "TM": when.strftime("%H%M%S"),
        "UC": f"Planted unlimited {i}",
        "UI": f"1.2.826.0.1.3680043.10.1234.{i + 1}",
        "UR": f"http://example.org/planted/{i}",
        "UT": f"Planted unlimited text {i}",
    }
    if vr in text:
        return text[vr]
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return i + 3
    if vr in ("FL", "FD"):
        return i + 0.5
    if vr == "AT":
        return 0x00100010
    return struct.pack("<Q", 0x0123456789ABCDEF ^ (i + 1))  # OB OW OD OF OL OV UN


def item_with_children(i: int) -> Dataset:
    """A sequence item with planted children: an instance UID and text."""
    item = Dataset()
    item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.10.4321.{i + 1}"
    item.PatientComments = f"Planted child text {i}"
    item.PersonName = f"Child{i}^Planted"
    return item


def element(tag: int, i: int) -> DataElement:
    vr = vr_of(tag) if tag not in EXTRA else EXTRA[tag]
    if vr == "SQ":
        return DataElement(tag, "SQ", Sequence([item_with_children(i)]))
    return DataElement(tag, vr, value_for(vr, i))


def planted_tags() -> list[int]:
    return sorted(_deid_table.ATTRIBUTES) + sorted(EXTRA)


@functools.cache
def build(depth: int) -> bytes:
    """A Part 10 file holding every planted attribute at ``depth``."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    holder = ds
    for level in range(depth):
        inner = Dataset()
        holder.add(DataElement(CARRIERS[level % 2], "SQ", Sequence([inner])))
        holder = inner
    for i, tag in enumerate(planted_tags()):
        target = ds.file_meta if tag >> 16 == 0x0002 and depth == 0 else holder
        target.add(element(tag, i))
    if "SOPInstanceUID" not in ds:
        ds.SOPInstanceUID = "1.2.826.0.1.3680043.10.1234.999999"
    ds.file_meta.setdefault("MediaStorageSOPInstanceUID", ds.SOPInstanceUID)
    # Written by hand: dcmwrite refuses command elements (0000,eeee) that
    # the table lists, but a hostile file can hold them.
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, ds.file_meta, enforce_standard=True)
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return buf.getvalue()


@functools.cache
def export(depth: int, shift: int | None = None) -> bytes:
    return deidentified_bytes(build(depth), salt=SALT, date_shift_days=shift)[0]


def holder_at(ds: Dataset, depth: int) -> tuple[Dataset | None, Dataset | None]:
    """The dataset at ``depth`` (and the file meta, at depth 0)."""
    for level in range(depth):
        seq = ds.get(CARRIERS[level % 2])
        if seq is None or not seq.value:
            return None, None
        ds = seq.value[0]
    return ds, getattr(ds, "file_meta", None) if depth == 0 else None


def survivors(planted: bytes, exported: bytes, depth: int) -> list[str]:
    """Each planted attribute still present in the export with its value."""
    before, meta_before = holder_at(pydicom.dcmread(io.BytesIO(planted)), depth)
    after, meta_after = holder_at(pydicom.dcmread(io.BytesIO(exported)), depth)
    if after is None:
        return []
    found = []
    for tag in planted_tags():
        src = meta_before if tag >> 16 == 0x0002 and depth == 0 else before
        out = meta_after if tag >> 16 == 0x0002 and depth == 0 else after
        if src is None or tag not in src:
            continue
        old = src[tag].value
        if out is not None and tag in out and out[tag].value == old:
            action = basic_profile_action(tag)
            found.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {action}")
    return found


def test_the_table_is_whole_and_names_its_edition():
    actions = {a for a, _ in _deid_table.ATTRIBUTES.values()}
    assert actions <= {"X", "Z", "D", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
    # Edition 2026c lists 652 single attributes and 3 repeating-group rows
    # (the issue counted 623 in an older edition); a regenerated table may
    # only grow.
    assert len(_deid_table.ATTRIBUTES) + len(_deid_table.MASKED) >= 623
    assert TABLE_EDITION == _deid_table.EDITION and TABLE_EDITION[:4].isdigit()
    for kw in ("PatientTelecomInformation", "PersonAddress", "ReasonForVisit"):
        tag = pydicom.datadict.tag_for_keyword(kw)
        assert basic_profile_action(tag) is not None, kw


@pytest.mark.parametrize("shift", [None, -37], ids=["dates-removed", "dates-shifted"])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_no_table_attribute_survives_with_its_value(depth, shift):
    planted, exported = build(depth), export(depth, shift)
    assert survivors(planted, exported, depth) == []


@pytest.mark.parametrize("depth", [0, 1])
def test_no_planted_text_appears_anywhere_in_the_export(depth):
    planted, exported = build(depth), export(depth)
    src = pydicom.dcmread(io.BytesIO(planted))
    needles = {
        str(e.value)
        for e in src.iterall()
        if e.VR in ("LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR", "AE", "UI")
        and len(str(e.value)) >= 8
        and not deid.is_uid_preserved(str(e.value))
        and e.tag not in (0x00080016, 0x00020002, 0x00020010, 0x00020012)
    }
    assert len(needles) > 300
    raw = exported.decode("latin-1")
    assert sorted(n for n in needles if n in raw) == []


@pytest.mark.parametrize("depth", [0, 1])
def test_every_action_is_the_tables(depth):
    """X removes, Z empties, D puts a dummy, U a new UID; combinations pick one."""
    after, meta = holder_at(pydicom.dcmread(io.BytesIO(export(depth))), depth)
    wrong = []
    for tag, (action, name) in _deid_table.ATTRIBUTES.items():
        out = meta if tag >> 16 == 0x0002 and depth == 0 else after
        if tag >> 16 == 0x0002 and depth:
            out = after
        elem = out.get(tag) if out is not None else None
        vr = vr_of(tag)
        if tag >> 16 == 0x0000 and depth == 0:
            action = "X"  # command elements do not belong in a stored dataset
        if action == "X" and elem is not None:
            wrong.append(f"{name}: {action} but present")
        elif action == "Z" and (elem is None or (vr != "SQ" and elem.VM)):
            wrong.append(f"{name}: {action} but {elem!r}")
        elif action == "Z" and vr == "SQ" and len(elem.value):
            wrong.append(f"{name}: {action} but items remain")
        elif action == "D" and (elem is None or (vr != "SQ" and not elem.VM)):
            wrong.append(f"{name}: {action} but {elem!r}")
        elif action == "U" and (elem is None or str(elem.value)[:5] != "2.25."):
            wrong.append(f"{name}: {action} but {elem!r}")
    assert wrong == []


def test_a_dummy_sequence_keeps_its_items_de_identified():
    out = pydicom.dcmread(io.BytesIO(export(0)))
    for keyword in ("ContentSequence", "GraphicAnnotationSequence"):
        (item,) = out[keyword].value
        assert "PatientComments" not in item  # X inside the item
        assert str(item.PersonName) == "ANONYMOUS"  # D inside the item
        assert item.ReferencedSOPInstanceUID.startswith("2.25.")  # U


def test_private_curve_and_overlay_rows_are_removed_at_every_depth():
    for depth in (0, 1, 2):
        exported, report = deidentified_bytes(build(depth), salt=SALT)
        after, _ = holder_at(pydicom.dcmread(io.BytesIO(exported)), depth)
        assert [hex(t) for t in EXTRA if t in after] == [], depth
        assert "(6002,4000)" in report.removed


def test_the_keyword_table_covers_every_known_attribute():
    known = [t for t in _deid_table.ATTRIBUTES if keyword_for_tag(t)]
    assert len(deid._ACTIONS) == len(known)


def test_what_medimg_lab_removes_beyond_the_table():
    """Free text of SR content items and the file meta's AE titles go too."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "Seen by Dr Planted on the ward"
    ds.ContentSequence = [item]
    ds.file_meta.SourceApplicationEntityTitle = "PLANTEDAE"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw, _ = deidentified_bytes(buf.getvalue(), salt=SALT)
    out = pydicom.dcmread(io.BytesIO(raw))
    assert "TextValue" not in out.ContentSequence[0]
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert b"PLANTEDAE" not in raw and b"Dr Planted" not in raw
