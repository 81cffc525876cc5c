"""Seeds and the per-input check shared by the fuzz tests and the atheris harness.

:func:`probe` loads one input with :func:`medimg_lab.load` under the fuzzing
memory budget and says what happened:

- ``"loaded"``: a MedImage with a numpy array came back;
- ``"refused"``: a reader raised a :class:`~medimg_lab.MedImgError` that names
  the problem;
- ``"net"``: a reader let out another exception (or ran out of memory) and
  only the last-resort handler of ``load`` turned it into a generic
  MedImgError. That is a crash of the reader, hidden from the caller;
- ``"unhandled"``: something other than a MedImgError left ``load``.

It also measures the peak memory of the load: Python and numpy allocations
with :mod:`tracemalloc`, and, where Linux allows resetting it, the growth of
the resident set (which sees what C and C++ decoders allocate as well).

The stated budget: every fuzzed load gets ``max_bytes=FUZZ_MAX_BYTES``
(8 MiB), so a header announcing more is refused before decoding; no input may
make one load allocate more than ``PEAK_BUDGET``: 1.5 x 8 MiB, the peak that
``load`` states for its working set, plus 4 MiB of allocator and codec state
(the libraries are imported, and warmed up, before anything is measured).

Nothing here imports pytest or hypothesis, so that ``make fuzz`` needs only
the package and atheris.
"""

from __future__ import annotations

import gzip
import re
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from pydicom.data import get_testdata_file

import medimg_lab
import medimg_lab.io
from medimg_lab import MedImage, MedImgError
from medimg_lab.io._source import sniff

__all__ = [
    "CRASHERS",
    "DICOM_SEEDS",
    "FORMATS",
    "FUZZ_MAX_BYTES",
    "HANG_SECONDS",
    "OTHER_SEEDS",
    "PEAK_BUDGET",
    "SEEDS",
    "Outcome",
    "Tally",
    "crasher_files",
    "library_text",
    "nifti_volume",
    "png_image",
    "probe",
    "seed",
    "seed_format",
    "sniff_format",
    "warm_up",
]

FORMATS = ("dicom", "nifti", "png")

#: ``max_bytes`` of every fuzzed load: the largest seed needs 1.9 MB.
FUZZ_MAX_BYTES = 8 * 1024**2
#: No input may make one load allocate more than this (traced or resident).
PEAK_BUDGET = int(1.5 * FUZZ_MAX_BYTES) + 4 * 1024**2
#: A load that takes more CPU time than this is a hang (CPU time, not
#: wall-clock: other work on the machine does not make an input hang).
HANG_SECONDS = 10.0

CRASHERS = Path(__file__).resolve().parents[1] / "data" / "crashers"

DICOM_SEEDS = (
    "CT_small.dcm",  # explicit VR little endian, CT with rescale
    "MR_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",  # 10 frames
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR colour
    "MR_small_jpeg_ls_lossless.dcm",
    "OBXXXX1A.dcm",  # 800 x 600 RGB ultrasound
    "image_dfl.dcm",  # deflated explicit VR little endian
    "MR_small_bigendian.dcm",  # explicit VR big endian
)
OTHER_SEEDS = ("nifti", "nifti_gz", "png8", "png16")
SEEDS = DICOM_SEEDS + OTHER_SEEDS


def nifti_volume() -> bytes:
    """A small int16 volume (10 x 9 x 8) with a gradient, as NIfTI-1 bytes."""
    arr = (np.arange(10 * 9 * 8, dtype=np.int16).reshape(10, 9, 8) * 7) - 1000
    return nib.Nifti1Image(arr, np.eye(4)).to_bytes()


def png_image(depth: int) -> bytes:
    """A 24 x 32 grey gradient as an 8- or 16-bit PNG."""
    yy, xx = np.mgrid[0:24, 0:32]
    if depth == 8:
        img = ((yy * 32 + xx) % 256).astype(np.uint8)
    else:
        img = ((yy * 32 + xx) * 83).astype(np.uint16)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


@cache
def seed(name: str) -> bytes:
    """The bytes of a seed file; every one of them loads."""
    if name in DICOM_SEEDS:
        found = get_testdata_file(name, download=False)
        if found is None:
            raise FileNotFoundError(f"{name} is not installed: pip install pydicom")
        return Path(found).read_bytes()
    if name == "nifti":
        return nifti_volume()
    if name == "nifti_gz":
        return gzip.compress(nifti_volume(), mtime=0)
    if name == "png8":
        return png_image(8)
    if name == "png16":
        return png_image(16)
    raise KeyError(name)


def seed_format(name: str) -> str:
    """``"dicom"``, ``"nifti"`` or ``"png"``: the format a seed is fuzzed as."""
    if name in DICOM_SEEDS:
        return "dicom"
    return "png" if name.startswith("png") else "nifti"


# --------------------------------------------------------------------------
# One input


@dataclass
class Outcome:
    """What one ``load`` of one input did."""

    kind: str  # "loaded", "refused", "net" or "unhandled"
    error: BaseException | None
    peak_traced: int  # bytes, tracemalloc
    peak_rss: int | None  # bytes of resident-set growth; None where unmeasurable
    seconds: float = 0.0  # CPU time of the load
    library: list[str] = field(default_factory=list)  # library text in the message

    @property
    def peak(self) -> int:
        return max(self.peak_traced, self.peak_rss or 0)

    @property
    def crashed(self) -> bool:
        return self.kind in ("net", "unhandled")

    @property
    def hung(self) -> bool:
        return self.seconds > HANG_SECONDS

    def describe(self, data: bytes) -> str:
        """A one-paragraph account of a crash or a budget overrun."""
        head = f"load() of {len(data)} bytes (starting {data[:16]!r})"
        exc = self.error
        if self.library:
            return (
                f"{head} refused it with a message that carries a library's "
                f"text {self.library}: {str(exc)[:300]}"
            )
        if self.hung:
            return f"{head} took {self.seconds:.1f} s of CPU time (a hang)"
        if self.kind == "unhandled":
            kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
            return f"{head} raised {kind}, not a MedImgError: {str(exc)[:300]}"
        if self.kind == "net":
            inner = exc.__context__
            kind = f"{type(inner).__module__}.{type(inner).__qualname__}"
            return (
                f"{head}: a reader raised {kind} ({str(inner)[:300]}), which only "
                f"load()'s last-resort handler caught, as {exc!s:.200}. The reader "
                "must name the problem with a MedImgError of its own."
            )
        return (
            f"{head} allocated {self.peak_traced / 1024**2:.1f} MiB (traced), "
            f"{(self.peak_rss or 0) / 1024**2:.1f} MiB (resident), more than the "
            f"{PEAK_BUDGET / 1024**2:.0f} MiB budget."
        )


_NET_FILE = medimg_lab.io.__file__


def _raised_by_net(exc: BaseException) -> bool:
    """Whether ``exc`` was made by ``load``'s last-resort handler ``_guard``."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return code.co_name == "_guard" and code.co_filename == _NET_FILE


def _rss_reset() -> int | None:
    """Reset the peak resident set size; return the current one (bytes)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _rss_field("VmRSS")
    except OSError:
        return None


def _rss_field(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(key)


def probe(data: bytes, *, max_bytes: int = FUZZ_MAX_BYTES) -> Outcome:
    """Load ``data`` once, classify the result and measure the peak memory."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base_traced = tracemalloc.get_traced_memory()[0]
    base_rss = _rss_reset()
    error = None
    started = time.process_time()
    try:
        with warnings.catch_warnings():
            # Damaged files make pydicom, nibabel and Pillow warn; only
            # exceptions matter.
            warnings.simplefilter("ignore")
            image = medimg_lab.load(data, max_bytes=max_bytes)
        kind = "loaded"
        if not (isinstance(image, MedImage) and isinstance(image.array, np.ndarray)):
            kind, error = "unhandled", TypeError(f"load() returned {image!r}")
        del image
    except MedImgError as exc:
        kind, error = ("net" if _raised_by_net(exc) else "refused"), exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # e.g. a Rust panic, which is no Exception
        kind, error = "unhandled", exc
    seconds = time.process_time() - started
    peak_rss = None if base_rss is None else _rss_field("VmHWM") - base_rss
    peak_traced = tracemalloc.get_traced_memory()[1] - base_traced
    if not tracing:
        tracemalloc.stop()
    library = library_text(str(error)) if kind == "refused" else []
    return Outcome(kind, error, peak_traced, peak_rss, seconds, library)


#: What a library's exception text looks like inside a message: an exception
#: class name, "Error:", a traceback, or the phrases Python, NumPy, nibabel,
#: pydicom and Pillow put in theirs.
_LIBRARY_TEXT = re.compile(
    r"\b[A-Z][A-Za-z0-9_]*(?:Error|Exception|Panic|Warning)\b"
    r"|\b(?:Error|Exception)\s*:"
    r"|Traceback|object has no attribute|Python int|too large to convert"
    r"|invalid literal|could not convert|did not converge|was removed"
    r"|unpack requires|index out of|cannot reshape|buffer is smaller"
    r"|cannot identify image file|not enough values|list index"
    r"|<class '|Errno",
)


def library_text(message: str) -> list[str]:
    """The fragments of ``message`` that are a library's text, not ours."""
    return [m.group(0) for m in _LIBRARY_TEXT.finditer(message)]


def warm_up() -> None:
    """Load every seed and crasher once, so that one-off costs (lazily loaded
    codecs, the first Rust panic's backtrace) do not count as an input's peak."""
    for name in SEEDS:
        medimg_lab.load(seed(name))
    for path in crasher_files():
        probe(path.read_bytes())


# --------------------------------------------------------------------------
# Counting


@dataclass
class _Counts:
    inputs: int = 0
    loaded: int = 0
    unhandled: int = 0
    net: int = 0
    hangs: int = 0
    library: int = 0
    slowest: float = 0.0
    peak_traced: int = 0
    peak_rss: int = 0
    rss_measured: bool = False


@dataclass
class Tally:
    """Inputs, crashes and peak memory per format."""

    counts: dict[str, _Counts] = field(
        default_factory=lambda: {f: _Counts() for f in FORMATS}
    )

    def add(self, fmt: str, outcome: Outcome) -> None:
        c = self.counts.setdefault(fmt, _Counts())
        c.inputs += 1
        c.loaded += outcome.kind == "loaded"
        c.unhandled += outcome.kind == "unhandled"
        c.net += outcome.kind == "net"
        c.hangs += outcome.hung
        c.library += bool(outcome.library)
        c.slowest = max(c.slowest, outcome.seconds)
        c.peak_traced = max(c.peak_traced, outcome.peak_traced)
        if outcome.peak_rss is not None:
            c.rss_measured = True
            c.peak_rss = max(c.peak_rss, outcome.peak_rss)

    @property
    def inputs(self) -> int:
        return sum(c.inputs for c in self.counts.values())

    @property
    def crashes(self) -> int:
        return sum(c.unhandled + c.net for c in self.counts.values())

    @property
    def findings(self) -> int:
        """Crashes, hangs and messages with library text, all formats."""
        return self.crashes + sum(c.hangs + c.library for c in self.counts.values())

    def lines(self) -> list[str]:
        """One line per format: inputs, crashes, hangs, library text, memory."""
        out = []
        for fmt, c in self.counts.items():
            if not c.inputs:
                continue
            rss = f"{c.peak_rss / 1024**2:.1f} MiB" if c.rss_measured else "n/a"
            holds = max(c.peak_traced, c.peak_rss) <= PEAK_BUDGET
            out.append(
                f"{fmt}: {c.inputs} inputs ({c.loaded} loaded), "
                f"{c.unhandled} unhandled exceptions, "
                f"{c.net} caught only by load()'s last-resort handler, "
                f"{c.hangs} hangs (slowest {c.slowest:.2f} s CPU), "
                f"{c.library} messages carrying library text; "
                f"peak memory {c.peak_traced / 1024**2:.1f} MiB traced, "
                f"{rss} resident growth (budget {PEAK_BUDGET / 1024**2:.0f} MiB, "
                f"max_bytes {FUZZ_MAX_BYTES / 1024**2:.0f} MiB: "
                f"{'holds' if holds else 'BROKEN'})"
            )
        return out


def sniff_format(data: bytes) -> str:
    """The fuzz format an input belongs to, from its content."""
    kind = sniff(data[:1024])
    if kind in ("nifti", "nifti-gz", "gzip"):
        return "nifti"
    if kind in ("png", "jpeg", "tiff"):
        return "png"
    return "dicom"


def crasher_files() -> list[Path]:
    """The regression inputs under ``tests/data/crashers/``."""
    return sorted(CRASHERS.glob("*.bin")) if CRASHERS.is_dir() else []
