"""Patient identifiers never leave the sample files (issue 9, item 2).

The identifiers are read from the DICOM files the project uses (the DICOM
samples of :func:`medimg_lab.data.samples` and any DICOM file under
``tests/``); none is written in this file. They are then looked for in

- every committed notebook's outputs and every test artifact (the PHI scan,
  which lists what it looked for in pytest's summary);
- ``MedImage.meta``, log records and warnings of ``load`` and ``batch.run``;
- every export path: ``save`` (NIfTI header, extensions, PNG text chunks), the
  batch outputs, the CLI (``samples --export``, ``run``, ``info``), the viewer
  dashboard's downloads and the de-identified DICOM export.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
import io
import json
import logging
import re
import shutil
import struct
import subprocess
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import generate_uid

import medimg_lab as ml
from medimg_lab import data
from medimg_lab.cli import main
from medimg_lab.io.deid import deidentify, export_deidentified, is_uid_preserved
from medimg_lab.recipe import Recipe

REPO = Path(__file__).resolve().parents[1]

#: Header attributes that name or identify a person, a place or a visit.
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientBirthDate",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "OperatorsName",
)
#: Values that are placeholders or plain words, not identifiers: searching for
#: them would only find the word ("perfusion_ct", "ward").
GENERIC = frozenset(
    {"anon", "anonymized", "anonymous", "unknown", "none", "ward", "exam number"}
    | {"perfusion", "stroke"}
)
_ALNUM = re.compile(r"[A-Za-z0-9]")
_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Needle:
    """One value to look for, and where it comes from."""

    text: str
    source: str  # "693_UNCR.dcm PatientName"


def dicom_sources() -> list[Path]:
    """The DICOM sample files, and the DICOM files under ``tests/``."""
    found = [
        data.path(s.name)
        for s in data.samples()
        if s.package in ("pydicom", "pydicom-data")
    ]
    for path in sorted((REPO / "tests").rglob("*")):
        if "artifacts" in path.parts or not path.is_file():
            continue
        with open(path, "rb") as fh:
            if fh.read(132)[128:] == b"DICM":
                found.append(path)
    return found


def _values(elem: pydicom.DataElement) -> list[str]:
    values = list(elem.value) if elem.VM > 1 else [elem.value]
    return [str(v).strip() for v in values if v not in (None, "")]


def _skip_reason(value: str, vendor: set[str]) -> str | None:
    if len(_ALNUM.findall(value)) < 3:
        return "fewer than 3 letters or digits"
    if value.isdigit() and len(value) < 6:
        return "a short number, found everywhere"
    if len(set(value)) == 1:
        return "one repeated character"
    if value.lower() in GENERIC:
        return "a generic word"
    if any(value.lower() in v.lower() for v in vendor):
        return "the manufacturer's name"
    return None


def _forms(vr: str, value: str) -> list[str]:
    """The value, and the forms a program would print it in."""
    forms = [value]
    if vr == "PN":
        parts = [p.strip() for p in re.split(r"[\^=]", value) if p.strip()]
        if len(parts) > 1:
            forms.append(" ".join(reversed(parts)))  # "Given Family"
        forms += [p for p in parts if len(p) >= 4]
    if vr == "DA" and re.fullmatch(r"\d{8}", value):
        forms.append(f"{value[:4]}-{value[4:6]}-{value[6:]}")
    return forms


@functools.cache
def identifiers(path: Path) -> tuple[tuple[Needle, ...], tuple[tuple[str, str], ...]]:
    """Names, IDs, birth dates and places of one file; and the values skipped."""
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    vendor = {
        v
        for k in ("Manufacturer", "ManufacturerModelName")
        if k in ds
        for v in _values(ds[k])
    }
    needles: dict[str, Needle] = {}
    skipped: dict[str, str] = {}
    for elem in ds.iterall():
        if elem.keyword not in IDENTIFYING:
            continue
        for value in _values(elem):
            if reason := _skip_reason(value, vendor):
                skipped.setdefault(value, f"{elem.keyword}: {reason}")
                continue
            for form in _forms(elem.VR, value):
                reason = _skip_reason(form, vendor)
                if reason:
                    skipped.setdefault(form, f"{elem.keyword}: {reason}")
                else:
                    needles.setdefault(
                        form, Needle(form, f"{path.name} {elem.keyword}")
                    )
    return tuple(needles.values()), tuple(skipped.items())


@functools.cache
def instance_uids(path: Path) -> tuple[Needle, ...]:
    """Every UID of the file that names an instance (not a class or syntax)."""
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    found = {}
    for elem in [*ds.file_meta.iterall(), *ds.iterall()]:
        if elem.VR != "UI" or elem.keyword.endswith("ClassUID"):
            continue  # a class (SOP, implementation) names no one
        for value in _values(elem):
            if len(value) >= 10 and not is_uid_preserved(value):
                found.setdefault(value, Needle(value, f"{path.name} {elem.keyword}"))
    return tuple(found.values())


@functools.cache
def all_dates(path: Path) -> tuple[Needle, ...]:
    """Every non-trivial date (DA) of the file."""
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    found = {}
    for elem in ds.iterall():
        if elem.VR == "DA":
            for value in _values(elem):
                if re.fullmatch(r"\d{8}", value) and len(set(value)) > 1:
                    found.setdefault(
                        value, Needle(value, f"{path.name} {elem.keyword}")
                    )
    return tuple(found.values())


def needles_of(paths, *, uids: bool = False, dates: bool = False) -> list[Needle]:
    out: dict[str, Needle] = {}
    for path in paths:
        for needle in identifiers(path)[0]:
            out.setdefault(needle.text, needle)
        for needle in instance_uids(path) if uids else ():
            out.setdefault(needle.text, needle)
        for needle in all_dates(path) if dates else ():
            out.setdefault(needle.text, needle)
    return list(out.values())


def find(text: str, needles) -> list[str]:
    """The needles found in ``text``: whole words, any case."""
    if not needles or not text:
        return []
    by_length = sorted({n.text for n in needles}, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![A-Za-z0-9])(?:"
        + "|".join(map(re.escape, by_length))
        + r")(?![A-Za-z0-9])",
        re.IGNORECASE,
    )
    lower = {t.lower(): t for t in by_length}
    return sorted({lower[m.group(0).lower()] for m in pattern.finditer(text)})


# ------------------------------------------------------------ text extraction
def png_text(payload: bytes) -> str:
    """The text a PNG carries besides its pixels: text chunks and EXIF."""
    if not payload.startswith(_PNG):
        return ""
    texts, pos = [], len(_PNG)
    while pos + 8 <= len(payload):
        length, kind = struct.unpack(">I4s", payload[pos : pos + 8])
        body = payload[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind not in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            continue
        if kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            body = key + b" " + zlib.decompress(rest[1:])
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _tkey, _, text = rest.partition(b"\0")
            body = key + b" " + (zlib.decompress(text) if compressed else text)
        texts.append(f"{kind.decode('latin-1')}: {body.decode('latin-1')}")
    return "\n".join(texts)


def nifti_text(payload: bytes) -> str:
    """The header and extensions of a NIfTI file (``.nii`` or ``.nii.gz``)."""
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    offset = int(struct.unpack("<f", payload[108:112])[0]) or 352
    return payload[: max(offset, 352)].decode("latin-1")


def file_text(path: Path) -> str:
    """What a reader of ``path`` can see, as text: never the pixels."""
    payload = path.read_bytes()
    name = path.name.lower()
    if payload.startswith(_PNG):
        return png_text(payload)
    if name.endswith((".nii", ".nii.gz")):
        return nifti_text(payload)
    if name.endswith(".parquet"):
        return pd.read_parquet(io.BytesIO(payload)).to_csv()
    if name.endswith(".ipynb"):
        return payload.decode("utf-8", "replace")
    if b"\0" in payload[:8192]:
        return ""  # binary: pixels or a DICOM source, not an output
    return payload.decode("utf-8", "replace")


def notebook_outputs(nb: dict) -> Iterator[tuple[str, str]]:
    """``(where, text)`` of every output: text, HTML, JSON, image metadata."""
    for k, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []):
            where = f"cell {k} {output.get('output_type')}"
            if "text" in output:
                yield where, "".join(output["text"])
            for mime, value in output.get("data", {}).items():
                text = "".join(value) if isinstance(value, list) else value
                if mime in ("image/png", "image/jpeg", "image/gif"):
                    yield f"{where} {mime}", png_text(base64.b64decode(text))
                elif isinstance(text, str):
                    yield f"{where} {mime}", text
                else:
                    yield f"{where} {mime}", json.dumps(text)
            yield f"{where} metadata", json.dumps(output.get("metadata", {}))
            if output.get("output_type") == "error":
                yield (
                    where,
                    "\n".join(
                        [
                            output.get("ename", ""),
                            output.get("evalue", ""),
                            *output.get("traceback", []),
                        ]
                    ),
                )


def scan_notebook(path: Path, needles) -> list[str]:
    nb = json.loads(path.read_text())
    return [
        f"{path.name} {where}: {hit}"
        for where, text in notebook_outputs(nb)
        for hit in find(text, needles)
    ]


def scan_files(paths, needles) -> list[str]:
    return [
        f"{path}: {hit}"
        for path in paths
        if path.is_file()
        for hit in find(file_text(path), needles)
    ]


def notebooks() -> list[Path]:
    return sorted(
        [
            *(REPO / "notebooks").rglob("*.ipynb"),
            *(REPO / "tests/browser").glob("notebooks/*.ipynb"),
        ]
    )


def tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    listed = subprocess.run(  # noqa: S603 git at its full path, fixed argv, no shell
        [git, "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


SOURCES = dicom_sources()
NEEDLES = needles_of(SOURCES)
EVERYTHING = needles_of(SOURCES, uids=True)
DICOM_SAMPLES = [
    s.name for s in data.samples() if s.package in ("pydicom", "pydicom-data")
]


@pytest.fixture(scope="module")
def looked_for(summary_line):
    """List the identifiers in pytest's summary; return them as one line."""
    n_uids = len(EVERYTHING) - len(NEEDLES)
    summary_line(
        "PHI scan",
        f"looked for {len(NEEDLES)} names, IDs, birth dates and places and "
        f"{n_uids} instance UIDs from {len(SOURCES)} DICOM files, in notebook "
        "outputs, test artifacts and tracked files",
    )
    for path in SOURCES:
        found, skipped = identifiers(path)
        values = ", ".join(f"{n.source.split()[-1]}={n.text!r}" for n in found)
        summary_line("PHI scan", f"  {path.name}: {values}")
        if skipped:
            text = ", ".join(f"{v!r} ({r})" for v, r in skipped)
            summary_line("PHI scan", f"  {path.name} not searched: {text}")
    listing = "; ".join(f"{n.text!r} ({n.source})" for n in NEEDLES)
    print("PHI scan: looked for", listing)
    return listing


# ----------------------------------------------------------------- the scan
def test_the_samples_do_carry_identifiers():
    """The scan is only worth something if there is something to find."""
    kinds = {n.source.split()[-1] for n in NEEDLES}
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= kinds
    assert {"InstitutionName", "ReferringPhysicianName", "AccessionNumber"} <= kinds
    assert len(NEEDLES) >= 40 and len(EVERYTHING) > len(NEEDLES)


def test_no_identifier_in_committed_notebook_outputs(
    looked_for, record_property, summary_line
):
    record_property("phi_identifiers", looked_for)
    scanned = notebooks()
    assert len(scanned) >= 8
    hits = [h for path in scanned for h in scan_notebook(path, EVERYTHING)]
    assert hits == [], f"patient identifiers in notebook outputs: {hits}\n" + (
        f"looked for: {looked_for}"
    )
    summary_line("PHI scan", f"found in the outputs of {len(scanned)} notebooks: none")


def test_no_identifier_in_test_artifacts(looked_for, record_property, summary_line):
    record_property("phi_identifiers", looked_for)
    folder = REPO / "tests/browser/artifacts"
    if not folder.is_dir():
        pytest.skip("no tests/browser/artifacts yet: the browser tests make them")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    hits = scan_files(files, EVERYTHING)
    assert hits == [], f"patient identifiers in test artifacts: {hits}\n" + (
        f"looked for: {looked_for}"
    )
    summary_line("PHI scan", f"found in {len(files)} test artifacts: none")


def test_no_identifier_in_tracked_files(looked_for, record_property, summary_line):
    """Sources, docs, notebooks (sources too) and configs; UIDs excepted,
    which tests of the UID remapping must name."""
    record_property("phi_identifiers", looked_for)
    files = [p for p in tracked_files() if p.suffix != ".dcm" and p not in SOURCES]
    assert len(files) > 50
    hits = scan_files(files, NEEDLES)
    assert hits == [], f"patient identifiers in tracked files: {hits}\n" + (
        f"looked for: {looked_for}"
    )
    summary_line("PHI scan", f"found in {len(files)} tracked files: none")


def _notebook_with(outputs: list[dict], source: str = "") -> dict:
    return {
        "cells": [
            {"cell_type": "code", "source": source, "outputs": outputs},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _png_with_text(key: str, text: str) -> bytes:
    chunk = key.encode() + b"\0" + text.encode("latin-1")
    body = struct.pack(">I", len(chunk)) + b"tEXt" + chunk
    body += struct.pack(">I", zlib.crc32(b"tEXt" + chunk))
    return _PNG + body + struct.pack(">I", 0) + b"IEND" + b"\xaeB`\x82"


def _synthetic_outputs(name: str, pid: str, uid: str) -> list[dict]:
    png = base64.b64encode(_png_with_text("Comment", f"patient {pid}")).decode()
    return [
        {"output_type": "stream", "name": "stdout", "text": [f"Patient: {name}\n"]},
        {
            "output_type": "display_data",
            "data": {"text/html": [f"<td>{pid.lower()}</td>"], "image/png": png},
            "metadata": {},
        },
        {
            "output_type": "execute_result",
            "data": {"text/plain": "ok"},
            "metadata": {"image/png": {"alt": f"study {uid}"}},
            "execution_count": 1,
        },
        {"output_type": "error", "ename": "E", "evalue": "", "traceback": [name]},
    ]


def test_the_scan_finds_a_printed_patient_name(tmp_path):
    """A synthetic positive: the scanner must see each way an output can leak."""
    spine_ct = data.path("spine_ct")
    found = {n.source.split()[-1]: n.text for n in reversed(identifiers(spine_ct)[0])}
    name, pid = found["PatientName"], found["PatientID"]
    uid = instance_uids(spine_ct)[0].text
    for output in _synthetic_outputs(name, pid, uid):
        path = tmp_path / "leak.ipynb"
        path.write_text(json.dumps(_notebook_with([output])))
        assert scan_notebook(path, EVERYTHING), output
    quiet = tmp_path / "quiet.ipynb"
    quiet.write_text(json.dumps(_notebook_with([], source=f"print({name!r})")))
    assert scan_notebook(quiet, EVERYTHING) == []  # sources are not outputs
    assert scan_files([quiet], NEEDLES)  # ... but the tracked-file scan sees them
    assert not find(f"x{pid}y", NEEDLES)  # whole words only
    png = tmp_path / "shot.png"
    png.write_bytes(_png_with_text("Title", name))
    assert scan_files([png], NEEDLES) == [f"{png}: {name}"]


# -------------------------------------------------------- meta, logs, warnings
_PERSON_OR_ID = re.compile(
    r"(?<!Orientation)(?<!Position)Patient(?!Position|Orientation)|Physician|"
    r"Operator|Institution|Accession|(ID|UID|Date|DateTime)$"
)


def _keys(value) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _keys(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _keys(inner)


def _bad_key(key: str) -> bool:
    tag = tag_for_keyword(key)
    vr = dictionary_VR(tag) if tag is not None else ""
    return vr in ("PN", "DA", "DT", "TM", "UI") or bool(_PERSON_OR_ID.search(key))


@pytest.mark.parametrize("name", DICOM_SAMPLES)
def test_meta_holds_no_identifier_uid_or_date(name):
    path = data.path(name)
    needles = needles_of([path], uids=True, dates=True)
    for image in (ml.load(path), data.sample(name)):
        text = json.dumps(image.meta, default=str)
        assert find(text, needles) == []
        assert [k for k in _keys(image.meta) if _bad_key(k)] == []


def test_the_meta_check_would_catch_a_leak():
    assert (
        _bad_key("PatientName")
        and _bad_key("StudyDate")
        and _bad_key("OtherPatientIDs")
    )
    assert _bad_key("SOPInstanceUID") and _bad_key("OperatorsName")
    assert not _bad_key("PatientPosition") and not _bad_key("ImageOrientationPatient")
    assert not _bad_key("Modality") and not _bad_key("TransferSyntax")


def test_load_logs_and_warns_no_identifier(caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in SOURCES:
            try:
                ml.load(path)
            except ml.MedImgError as err:  # a crasher: its message counts too
                logging.getLogger("test").warning("%s", err)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    warned = "\n".join(str(w.message) for w in caught)
    assert find(logged + warned, EVERYTHING) == []


# ----------------------------------------------------------------- exports
def _dicom_inputs(folder: Path) -> dict[str, Path]:
    """The DICOM samples under their sample names, and a 3-file CT series."""
    folder.mkdir(parents=True)
    copies = {}
    for name in DICOM_SAMPLES:
        copies[name] = folder / f"{name}.dcm"
        shutil.copyfile(data.path(name), copies[name])
    series = folder / "series"
    series.mkdir()
    template = pydicom.dcmread(data.path("spine_ct"))
    for k in range(3):
        ds = template.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        ds.InstanceNumber = k + 1
        ds.save_as(series / f"IM{k}.dcm")
    return copies


STEPS = [
    {"op": "gaussian", "params": {"sigma_mm": 1.0}},
    {"op": "threshold_otsu", "params": {}},
    {"op": "keep_largest", "params": {}},
    {"op": "measure", "params": {}},
]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``medimg-lab run`` (in this process) over the DICOM samples and a series.

    Returns the output folder, stdout + stderr, log messages and warnings.
    """
    tmp = tmp_path_factory.mktemp("phi_run")
    _dicom_inputs(tmp / "in")
    recipe = Recipe(STEPS).save(tmp / "recipe.json")
    handler, root = _Records(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    out, err = io.StringIO(), io.StringIO()
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            warnings.simplefilter("always")
            code = main(
                [
                    "run",
                    str(recipe),
                    str(tmp / "in"),
                    "--out",
                    str(tmp / "out"),
                    "--serial",
                    "--save-images",
                    "--format",
                    "png",
                ]
            )
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return {
        "out": tmp / "out",
        "code": code,
        "console": out.getvalue() + err.getvalue(),
        "logs": "\n".join(handler.lines),
        "warnings": "\n".join(str(w.message) for w in caught),
    }


def test_batch_and_cli_run_outputs_hold_no_identifier(cli_run):
    out = cli_run["out"]
    written = sorted(p for p in out.rglob("*") if p.is_file())
    kinds = {p.suffix for p in written}
    assert {".json", ".csv", ".parquet", ".png", ".gz"} <= kinds, kinds
    table = pd.read_csv(out / "results.csv")
    assert len(table) == len(DICOM_SAMPLES) + 1  # the series is one study
    assert (table["status"] == "ok").sum() >= len(DICOM_SAMPLES) - 1
    assert scan_files(written, EVERYTHING) == []


def test_batch_and_cli_run_log_print_and_warn_no_identifier(cli_run):
    assert "studies:" in cli_run["console"]
    text = "\n".join(cli_run[k] for k in ("console", "logs", "warnings"))
    assert find(text, EVERYTHING) == []


def test_a_series_id_carries_no_part_of_its_uid(cli_run):
    """The batch names a series' outputs; a UID's tail is a timestamp and counter."""
    uid = str(pydicom.dcmread(data.path("spine_ct")).SeriesInstanceUID)
    (record,) = (cli_run["out"] / "items").glob("series*.json")
    ident = json.loads(record.read_text())["id"]
    tails = {uid[-8:], *(part for part in uid.split(".") if len(part) >= 5)}
    assert [t for t in tails if t in ident] == [], ident


def _phi_nifti(path: Path, text: str) -> None:
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    header = image.header
    header["descrip"] = text.encode()[:80]
    header["aux_file"] = text.encode()[:24]
    header["intent_name"] = text.encode()[:16]
    header["db_name"] = text.encode()[:18]
    header.extensions.append(nib.nifti1.Nifti1Extension("comment", text.encode()))
    nib.save(image, path)


def _assert_clean_nifti(path: Path, needles) -> None:
    header = nib.load(path).header
    for field in ("descrip", "aux_file", "intent_name", "db_name"):
        assert header[field].item() == b"", field
    assert len(header.extensions) == 0
    assert find(file_text(path), needles) == []


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_save_nifti_drops_identifying_header_fields(tmp_path, suffix):
    name = next(n for n in NEEDLES if n.source.endswith("PatientName")).text
    source = tmp_path / f"in{suffix}"
    _phi_nifti(source, name)
    assert find(file_text(source), NEEDLES) == [name]  # the check can see it
    image = ml.load(source)
    assert find(json.dumps(image.meta, default=str), NEEDLES) == []
    _assert_clean_nifti(ml.save(image, tmp_path / f"out{suffix}"), NEEDLES)


@pytest.mark.parametrize("name", DICOM_SAMPLES)
def test_save_of_a_dicom_sample_holds_no_identifier(tmp_path, name):
    needles = needles_of([data.path(name)], uids=True, dates=True)
    image = data.sample(name)
    _assert_clean_nifti(ml.save(image, tmp_path / "x.nii.gz"), needles)
    if not image.is_volume:
        png = ml.save(image, tmp_path / "x.png", window="default")
        assert png_text(png.read_bytes()) == ""  # no text chunk at all


def test_cli_samples_export_and_info_hold_no_identifier(tmp_path, capsys):
    assert main(["samples", *DICOM_SAMPLES, "--export", str(tmp_path)]) == 0
    written = sorted(tmp_path.glob("*.nii.gz"))
    assert len(written) == len(DICOM_SAMPLES)
    for path in written:
        _assert_clean_nifti(path, EVERYTHING)
    for name in DICOM_SAMPLES:
        assert main(["info", str(data.path(name))]) == 0
        assert main(["info", "--json", str(data.path(name))]) == 0
    printed = capsys.readouterr()
    assert "modality" in printed.out
    assert (
        find(printed.out + printed.err, needles_of(SOURCES, uids=True, dates=True))
        == []
    )


def _widget_text(widget) -> str:
    texts = []
    for attr in ("value", "description", "tooltip", "placeholder", "_options_labels"):
        value = getattr(widget, attr, None)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            texts.extend(value)
    for child in getattr(widget, "children", ()):
        texts.append(_widget_text(child))
    return "\n".join(texts)


@pytest.fixture(scope="module")
def dashboard():
    from medimg_lab.widgets.dashboards.viewer import ViewerDashboard

    return ViewerDashboard(ml.MedImage(np.zeros((8, 8), np.uint8), (1.0, 1.0)))


@pytest.mark.parametrize("name", DICOM_SAMPLES)
def test_viewer_dashboard_downloads_hold_no_identifier(dashboard, name):
    path = data.path(name)
    needles = needles_of([path], uids=True, dates=True)
    dashboard.clear_measurements()
    image = dashboard.load_bytes(path.read_bytes(), path.name)
    corner = (0,) * (image.array.ndim - 2 - image.is_color)
    dashboard.measure_roi((*corner, 1, 1), (*corner, 6, 6))
    dashboard.measure_distance((*corner, 0, 0), (*corner, 5, 5))
    png, csv = dashboard.export_png(), dashboard.export_csv()
    assert png.startswith(_PNG) and png_text(png) == ""
    assert "mm" in csv
    page = _widget_text(dashboard)
    assert find(csv + page + dashboard.message, needles) == []


GREY_DICOM_SAMPLES = [
    s.name
    for s in data.samples()
    if s.package in ("pydicom", "pydicom-data") and s.modality not in ("US", "OP")
]


def _zip_text(payload: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return "".join(archive.read(n).decode("latin-1") for n in archive.namelist())


@pytest.mark.parametrize("name", GREY_DICOM_SAMPLES)
def test_segmentation_dashboard_downloads_hold_no_identifier(name):
    from medimg_lab.widgets.dashboards.segmentation import SegmentationDashboard

    path = data.path(name)
    needles = needles_of([path], uids=True, dates=True)
    dash = SegmentationDashboard(ml.MedImage(np.zeros((8, 8), np.int16), (1, 1)))
    dash.load_bytes(path.read_bytes(), path.name)
    mask, csv, pair = dash.export_mask(), dash.export_csv(), dash.export_pair()
    texts = [gzip.decompress(mask).decode("latin-1"), csv, _zip_text(pair)]
    assert "image/image_001.dcm" in zipfile.ZipFile(io.BytesIO(pair)).namelist()
    page = _widget_text(dash)
    assert find("".join(texts) + page + dash.message, needles) == []


@pytest.mark.parametrize("name", GREY_DICOM_SAMPLES)
def test_compare_dashboard_downloads_hold_no_identifier(name):
    from medimg_lab.widgets.dashboards.compare import CompareDashboard

    path = data.path(name)
    needles = needles_of([path], uids=True, dates=True)
    dash = CompareDashboard()
    dash.load_bytes(path.read_bytes(), path.name, which="A")
    dash.load_bytes(path.read_bytes(), path.name, which="B")
    png, nifti, csv = dash.export_png(), dash.export_nifti(), dash.export_csv()
    assert png_text(png) == ""
    texts = [gzip.decompress(nifti).decode("latin-1"), csv]
    page = _widget_text(dash)
    assert find("".join(texts) + page + dash.message, needles) == []


# ------------------------------------------------------ de-identified DICOM
@pytest.mark.parametrize("name", DICOM_SAMPLES)
@pytest.mark.parametrize("shift", [None, -37])
def test_deidentified_export_holds_no_identifier_or_old_uid(tmp_path, name, shift):
    path = data.path(name)
    out = tmp_path / "anon.dcm"
    export_deidentified(path, out, salt="s", date_shift_days=shift)
    needles = needles_of([path], uids=True, dates=shift is None)
    raw = out.read_bytes().decode("latin-1")
    assert find(raw, needles) == []
    ds = pydicom.dcmread(out)
    assert ds.PatientIdentityRemoved == "YES"
    assert not [e.tag for e in ds.iterall() if e.tag.is_private]
    assert str(ds.get("PatientBirthDate", "")) == ""


def test_exported_files_of_one_series_stay_one_series(tmp_path):
    """Same salt: shared UIDs map alike across files, instance UIDs stay apart."""
    names = ("US1_UNCR.dcm", "US1_UNCI.dcm")
    sources = [Path(pydicom.data.get_testdata_file(n, download=False)) for n in names]
    for salt, folder in (("one", "a"), ("one", "b"), ("two", "c")):
        for k, source in enumerate(sources):
            export_deidentified(source, tmp_path / folder / f"{k}.dcm", salt=salt)
    read = {
        f: [pydicom.dcmread(tmp_path / f / f"{k}.dcm") for k in range(2)] for f in "abc"
    }
    first, second = read["a"]
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.StudyInstanceUID != pydicom.dcmread(sources[0]).StudyInstanceUID
    assert read["b"][0].SOPInstanceUID == first.SOPInstanceUID  # repeatable
    assert read["c"][0].StudyInstanceUID != first.StudyInstanceUID  # salted


@pytest.mark.parametrize(
    ("name", "burned", "flagged"),
    [
        ("ultrasound", None, True),  # US without the attribute: assume text
        ("ultrasound", "NO", False),
        ("spine_ct", "YES", True),
        ("spine_ct", None, False),
    ],
)
def test_burned_in_annotation_is_flagged(name, burned, flagged):
    ds = pydicom.dcmread(data.path(name))
    if burned is not None:
        ds.BurnedInAnnotation = burned
    assert deidentify(ds, salt="s")[1].burned_in_annotation is flagged


def test_cli_deidentify_warns_about_burned_in_text(tmp_path, capsys):
    assert (
        main(["deidentify", str(data.path("ultrasound")), str(tmp_path / "u.dcm")]) == 0
    )
    assert "burned-in" in capsys.readouterr().err
    assert (
        main(["deidentify", str(data.path("spine_ct")), str(tmp_path / "c.dcm")]) == 0
    )
    assert "burned-in" not in capsys.readouterr().err


def test_identifying_keywords_exist_in_the_dictionary():
    assert [k for k in IDENTIFYING if tag_for_keyword(k) is None] == []
