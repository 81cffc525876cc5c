"""A real Orthanc on loopback and sample studies to seed it (tests, notebooks).

:class:`Orthanc` writes a configuration (temporary storage and index
folders, a free HTTP port on 127.0.0.1, ``RemoteAccessAllowed: false``, the
DICOMweb plugin, HTTP basic authentication) and runs Debian's
``/usr/sbin/Orthanc`` in the foreground until :meth:`Orthanc.stop`.
:meth:`Orthanc.environment` gives the variables that
:func:`medimg_lab.archive.configured_archive` reads (the password in a file
of the storage folder, never in a variable's value shown anywhere), so that
a notebook or a dashboard server can be pointed at it.
:func:`seed_all` writes the sample series (new UIDs and synthetic patient
facts, never a sample's own) for :meth:`Orthanc.upload`.

Orthanc's DICOM port binds every interface and cannot be bound to loopback,
so this Orthanc's DICOM server is disabled (``DicomServerEnabled: false``):
no listener is reachable from another machine. The tests check DIMSE
against a pynetdicom SCP bound to 127.0.0.1 and, end to end, against an
Orthanc run inside a private network namespace (tests/archive/).

This module is used by the tests, the benchmarks and
``notebooks/06_archive.ipynb``; it needs Debian's ``orthanc`` and
``orthanc-dicomweb`` packages (:func:`available` says what is missing).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import requests
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless, generate_uid

__all__ = [
    "PASSWORD",
    "USER",
    "Orthanc",
    "Seeded",
    "available",
    "files_of",
    "free_port",
    "seed_all",
    "seed_ct_series",
    "seed_single",
    "seeded_orthanc",
]

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
#: The test archive's account (a test fixture, not a secret).
USER, PASSWORD = "medimg", "archive-test-password"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> str | None:
    """None if Orthanc and its DICOMweb plugin are installed, else why not."""
    for path in (ORTHANC, DICOMWEB_PLUGIN):
        if not path.exists():
            return (
                f"{path} is missing: install Debian's orthanc and orthanc-dicomweb "
                "(make test does, as root)"
            )
    return None


class Orthanc:
    """One Orthanc process on a free loopback port, over ``storage``.

    Parameters
    ----------
    storage : pathlib.Path
        Folder of its database, configuration and log (created if needed).
    port : int, optional
        Its HTTP port on 127.0.0.1; default a free one.
    users : dict of str to str, optional
        ``{user: password}`` of basic authentication; default the test
        user.
    """

    def __init__(self, storage: Path, *, port: int | None = None, users=None):
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = users if users is not None else {USER: PASSWORD}
        self.url = f"http://127.0.0.1:{self.port}/dicom-web"
        self.rest = f"http://127.0.0.1:{self.port}"
        self.log = self.storage / f"orthanc-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def config(self) -> dict:
        """Orthanc's configuration: loopback only, DICOM server off, basic auth."""
        return {
            "Name": "medimg-lab-test",
            "StorageDirectory": str(self.storage / "db"),
            "IndexDirectory": str(self.storage / "db"),
            "HttpPort": self.port,
            "DicomPort": free_port(),  # not opened: the DICOM server is off
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": self.users,
            "HttpTimeout": 30,
            "ConcurrentJobs": 1,
            "HttpThreadsCount": 8,
            "StorageCompression": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "StudiesMetadata": "Full",
            },
        }

    def start(self, timeout_s: float = 30) -> Orthanc:
        """Write the configuration, start Orthanc, return once it answers (s).

        Parameters
        ----------
        timeout_s : float
            Longest wait for its first answer, in seconds.

        Returns
        -------
        Orthanc
            Itself, running.
        """
        conf = self.storage / f"orthanc-{self.port}.json"
        conf.write_text(json.dumps(self.config(), indent=1))
        log = open(self.log, "ab")
        self._log = log
        self.proc = subprocess.Popen(  # noqa: S603 a fixed binary and our own config
            [str(ORTHANC), str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with {self.proc.returncode}: "
                    + self.log.read_text(errors="replace")[-2000:]
                )
            with contextlib.suppress(requests.RequestException):
                r = requests.get(
                    f"{self.url}/studies", auth=(USER, PASSWORD), timeout=2
                )
                if r.status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s")

    def stop(self, timeout_s: float = 15) -> None:
        """Terminate Orthanc (killed after ``timeout_s`` seconds).

        Parameters
        ----------
        timeout_s : float
            Wait for it to exit, in seconds, before killing it.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        with contextlib.suppress(AttributeError, OSError):
            self._log.close()

    def __enter__(self) -> Orthanc:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def environment(self, *, cache: str | os.PathLike | None = None) -> dict[str, str]:
        """The variables that point :func:`~medimg_lab.archive.configured_archive` here.

        ``MEDIMG_ARCHIVE_URL``, ``MEDIMG_ARCHIVE_USER`` and
        ``MEDIMG_ARCHIVE_PASSWORD_FILE`` (a file of the storage folder,
        readable by its owner only, holding the first user's password).

        Parameters
        ----------
        cache : path-like, optional
            A cache folder for the clients (``MEDIMG_ARCHIVE_CACHE``);
            default none set (the user's cache).

        Returns
        -------
        dict of str
            To merge into ``os.environ`` or a server's environment.
        """
        user, password = next(iter(self.users.items()))
        secret = self.storage / "archive-password"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password)
        env = {
            "MEDIMG_ARCHIVE_URL": self.url,
            "MEDIMG_ARCHIVE_USER": user,
            "MEDIMG_ARCHIVE_PASSWORD_FILE": str(secret),
        }
        if cache is not None:
            env["MEDIMG_ARCHIVE_CACHE"] = str(cache)
        return env

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crashed or unplugged server does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)

    def upload(self, paths) -> None:
        """Store files through Orthanc's own REST API (not the code under test).

        Parameters
        ----------
        paths : iterable of path-like
            DICOM files.
        """
        with requests.Session() as s:
            s.auth = (USER, PASSWORD)
            for path in paths:
                r = s.post(
                    f"{self.rest}/instances", data=Path(path).read_bytes(), timeout=60
                )
                r.raise_for_status()
                if r.json().get("Status") not in ("Success", "AlreadyStored"):
                    raise RuntimeError(f"Orthanc did not store {path}: {r.text}")


@dataclass
class Seeded:
    """What a seeding wrote: per series, its files and the facts put in them.

    Attributes
    ----------
    key : str
        The series' name in the seeding (``"spine_ct"``, ``"ct_series"``).
    files : list of pathlib.Path
        Its files.
    study_uid, series_uid : str
        The UIDs written into them.
    patient_id, accession, date, modality, description : str
        The facts a search finds them by.
    folder : pathlib.Path
        The series' folder.
    extra : dict
        Facts of a built series (``slices``, ``z_mm``).
    """

    key: str
    files: list[Path]
    study_uid: str
    series_uid: str
    patient_id: str
    accession: str
    date: str
    modality: str
    description: str
    folder: Path
    extra: dict = field(default_factory=dict)


#: Single-instance samples (one series each): square and not, compressed,
#: MONOCHROME1, RGB, enhanced multi-frame.
SINGLE = {
    "spine_ct": "CT_small.dcm",
    "mr_rle": "MR_small_RLE.dcm",
    "mr_jpegls": "MR_small_jpeg_ls_lossless.dcm",
    "head_ct_j2k": "693_J2KR.dcm",
    "chest_cr": "RG1_UNCR.dcm",
    "us_rgb": "US1_UNCR.dcm",
    "perfusion_ct": "eCT_Supplemental.dcm",
    "us_jpeg_lossless": "JPGLosslessP14SV1_1s_1f_8b.dcm",
}


def _restamp(ds, key: str, k: int, *, study_uid=None, series_uid=None, sop_uid=None):
    """New UIDs and known, synthetic search facts (never a sample's own)."""
    ds.StudyInstanceUID = study_uid or generate_uid(entropy_srcs=[key, "study"])
    ds.SeriesInstanceUID = series_uid or generate_uid(entropy_srcs=[key, "series"])
    ds.SOPInstanceUID = sop_uid or generate_uid(entropy_srcs=[key, "sop"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = f"TEST-{k:03d}"
    ds.PatientName = f"Test^Patient{k:03d}"
    ds.AccessionNumber = f"ACC{k:05d}"
    ds.StudyDate = f"2020{(k % 12) + 1:02d}15"
    ds.StudyDescription = f"{key} study"
    ds.SeriesDescription = f"{key} series"
    ds.SeriesNumber = k + 1


def seed_single(folder: Path) -> dict[str, Seeded]:
    """Each single-instance sample of :data:`SINGLE` as a series of its own.

    Parameters
    ----------
    folder : pathlib.Path
        Where the series' files are written, one subfolder each.

    Returns
    -------
    dict of str to Seeded
        By key.
    """
    out = {}
    for k, (key, name) in enumerate(SINGLE.items()):
        src = get_testdata_file(name, download=False)
        ds = pydicom.dcmread(src)
        _restamp(ds, key, k)
        target = folder / key / f"{key}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        out[key] = Seeded(
            key,
            [target],
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.PatientID,
            ds.AccessionNumber,
            ds.StudyDate,
            str(ds.Modality),
            ds.StudyDescription,
            target.parent,
        )
    return out


def seed_ct_series(
    folder: Path,
    key: str,
    k: int,
    *,
    slices: int,
    z_mm: float = 2.5,
    crop=None,
    source: str = "693_UNCR.dcm",
    rle: bool = False,
) -> Seeded:
    """A multi-slice series from one real slice, with known positions.

    Slice ``i`` is the source image rolled by ``3 i`` columns (so each slice
    differs), at ``z = i * z_mm``. Instance numbers run against the
    positions, and the files are written in a shuffled order, so that only
    the positions give the true order.

    Parameters
    ----------
    folder : pathlib.Path
        Where the series' subfolder is written.
    key : str
        The series' name, and its subfolder's.
    k : int
        The series' number among the seeded ones: its patient, accession,
        date and shuffling follow from it.
    slices : int
        Number of slices.
    z_mm : float
        Slice spacing in mm.
    crop : (int, int), optional
        ``(rows, cols)`` kept of the source image.
    source : str
        The pydicom-data file of the real slice.
    rle : bool
        Write the slices RLE-compressed.

    Returns
    -------
    Seeded
    """
    base = pydicom.dcmread(get_testdata_file(source, download=False))
    pixels = base.pixel_array
    if crop is not None:
        pixels = pixels[: crop[0], : crop[1]]
    study_uid = generate_uid(entropy_srcs=[key, "study"])
    series_uid = generate_uid(entropy_srcs=[key, "series"])
    for_uid = generate_uid(entropy_srcs=[key, "frame of reference"])
    out_dir = folder / key
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(k)
    files = []
    for i in rng.permutation(slices):
        ds = copy.deepcopy(base)
        _restamp(
            ds,
            key,
            k,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=generate_uid(entropy_srcs=[key, "sop", str(i)]),
        )
        plane = np.ascontiguousarray(np.roll(pixels, 3 * int(i), axis=1))
        ds.Rows, ds.Columns = plane.shape
        ds.PixelData = plane.astype(pixels.dtype).tobytes()
        ds.FrameOfReferenceUID = for_uid  # positions need a frame of reference
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(i) * z_mm]
        ds.SliceThickness = z_mm
        ds.InstanceNumber = slices - int(i)
        if rle:
            ds.compress(RLELossless)
        target = out_dir / f"slice-{int(rng.integers(10**9)):09d}.dcm"
        ds.save_as(target, enforce_file_format=True)
        files.append(target)
    return Seeded(
        key,
        files,
        study_uid,
        series_uid,
        f"TEST-{k:03d}",
        f"ACC{k:05d}",
        f"2020{(k % 12) + 1:02d}15",
        "CT",
        f"{key} study",
        out_dir,
        {"slices": slices, "z_mm": z_mm},
    )


def seed_all(
    folder: Path, *, ct_slices: int = 30, rle_slices: int = 24
) -> dict[str, Seeded]:
    """Every sample series the session's Orthanc holds.

    The single-instance samples (:func:`seed_single`) and two multi-slice CT
    series (:func:`seed_ct_series`): ``ct_series``, 512 x 512 at 2.5 mm, and
    ``small_ct_rle``, 128 x 96 RLE at 0.66 mm (non-square, anisotropic).

    Parameters
    ----------
    folder : pathlib.Path
        Where the series' files are written, one subfolder each.
    ct_slices, rle_slices : int
        Slices of ``ct_series`` and of ``small_ct_rle``.

    Returns
    -------
    dict of str to Seeded
        By key.
    """
    seeds = seed_single(folder)
    n = len(seeds)
    seeds["ct_series"] = seed_ct_series(folder, "ct_series", n, slices=ct_slices)
    seeds["small_ct_rle"] = seed_ct_series(
        folder,
        "small_ct_rle",
        n + 1,
        slices=rle_slices,
        z_mm=0.66,
        crop=(128, 96),
        source="CT_small.dcm",
        rle=True,
    )
    return seeds


def files_of(seeds: dict[str, Seeded]) -> list[Path]:
    """Every file of the seeded series, for :meth:`Orthanc.upload`.

    Parameters
    ----------
    seeds : dict of str to Seeded
        As :func:`seed_all` returns them.

    Returns
    -------
    list of pathlib.Path
    """
    return [f for s in seeds.values() for f in s.files]


@contextlib.contextmanager
def seeded_orthanc(
    storage: Path, files: Iterable[str | os.PathLike]
) -> Iterator[Orthanc]:
    """A running Orthanc over ``storage`` that holds ``files``; stopped on leaving.

    Parameters
    ----------
    storage : pathlib.Path
        Its storage and index folder (a fresh temporary folder).
    files : iterable of path-like
        The DICOM files to upload (:func:`files_of`).

    Yields
    ------
    Orthanc
        Running, on a free loopback port.

    Raises
    ------
    RuntimeError
        If Orthanc or its DICOMweb plugin is not installed (what
        :func:`available` says), or if it does not start.
    """
    missing = available()
    if missing:
        raise RuntimeError(missing)
    server = Orthanc(storage).start()
    try:
        server.upload(list(files))
        yield server
    finally:
        server.stop()
