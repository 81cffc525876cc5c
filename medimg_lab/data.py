"""Real sample studies, all from installed packages, never downloaded.

>>> from medimg_lab import data
>>> [s.name for s in data.samples()][:3]
['head_ct', 'spine_ct', 'chest_xray']
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NotFoundError
from .image import MedImage

__all__ = ["Sample", "path", "sample", "samples"]


@dataclass(frozen=True)
class Sample:
    """A sample study: what it is, where it comes from and under which terms.

    Attributes
    ----------
    name : str
        What :func:`sample` takes (``"head_ct"``).
    description : str
        The study in a sentence.
    modality : str
        DICOM modality code (``CT``, ``MR`` ...).
    package : str
        The installed package that holds the file.
    file : str
        The file's name in that package.
    provenance, license : str
        Where the data come from, and under which terms.
    """

    name: str
    description: str
    modality: str
    package: str
    file: str
    provenance: str
    license: str


_NEMA = "NEMA WG-04 DICOM compression test set, as redistributed by pydicom-data (MIT)"
_MNI = (
    "MNI ICBM 2009a nonlinear symmetric template, McConnell Brain Imaging "
    "Centre, bundled with nilearn"
)
_MNI_LICENSE = (
    "free to use, copy and modify with attribution (MNI/ICBM template terms); "
    "nilearn BSD-3-Clause"
)

_SAMPLES = (
    Sample(
        "head_ct",
        "Head CT, 512 x 512 axial slice with outside-field-of-view padding",
        "CT",
        "pydicom-data",
        "693_UNCR.dcm",
        "CQ500 head CT collection (qure.ai), as redistributed by pydicom-data",
        "CC BY-NC-SA 4.0 (CQ500); pydicom-data MIT",
    ),
    Sample(
        "spine_ct",
        "CT slice, 128 x 128, downsized from NEMA WG-04 CT1",
        "CT",
        "pydicom",
        "CT_small.dcm",
        "NEMA WG-04 CT1, downsized, shipped with pydicom",
        "pydicom MIT (public test data)",
    ),
    Sample(
        "chest_xray",
        "Chest radiograph (CR), 1955 x 1841, MONOCHROME1",
        "CR",
        "pydicom-data",
        "RG1_UNCR.dcm",
        _NEMA,
        "public DICOM test data; pydicom-data MIT",
    ),
    Sample(
        "tibia_xray",
        "Tibia radiograph (CR) with a non-ossifying fibroma, MONOCHROME1",
        "CR",
        "pydicom-data",
        "RG3_UNCR.dcm",
        _NEMA,
        "public DICOM test data; pydicom-data MIT",
    ),
    Sample(
        "shoulder_mr",
        "Shoulder MR, 1024 x 1024, with rescale slope",
        "MR",
        "pydicom-data",
        "MR2_UNCR.dcm",
        _NEMA,
        "public DICOM test data; pydicom-data MIT",
    ),
    Sample(
        "abdomen_mr",
        "Abdomen MR through the liver, Siemens, with overlay planes",
        "MR",
        "pydicom-data",
        "MR-SIEMENS-DICOM-WithOverlays.dcm",
        "Siemens MR sample with overlays, anonymised, from pydicom-data",
        "pydicom-data MIT (public test data)",
    ),
    Sample(
        "perfusion_ct",
        "Enhanced multi-frame CT (2 frames, 512 x 512), functional-group rescale",
        "CT",
        "pydicom-data",
        "eCT_Supplemental.dcm",
        "NEMA enhanced multi-frame CT samples (CT0012), from pydicom-data",
        "public DICOM test data; pydicom-data MIT",
    ),
    Sample(
        "ultrasound",
        "Ultrasound with colour Doppler, RGB, 480 x 640",
        "US",
        "pydicom-data",
        "US1_UNCR.dcm",
        _NEMA,
        "public DICOM test data; pydicom-data MIT",
    ),
    Sample(
        "brain_mri",
        "Brain MRI, T1 3D volume at 1 mm (MNI152 2009 template)",
        "MR",
        "nilearn",
        "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        _MNI,
        _MNI_LICENSE,
    ),
    Sample(
        "brain_mri_gm",
        "Gray-matter probability map (0-1) of the brain MRI, same grid",
        "MR",
        "nilearn",
        "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
        _MNI,
        _MNI_LICENSE,
    ),
    Sample(
        "brain_mri_wm",
        "White-matter probability map (0-1) of the brain MRI, same grid",
        "MR",
        "nilearn",
        "datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
        _MNI,
        _MNI_LICENSE,
    ),
    Sample(
        "retina",
        "Colour fundus photograph of a normal left eye, 1411 x 1411 RGB",
        "OP",
        "scikit-image",
        "data/retina.jpg",
        "Häggström M. (2014), WikiJournal of Medicine, doi:10.15347/wjm/2014.008, "
        "shipped with scikit-image",
        "CC0 1.0 (public domain)",
    ),
)

_BY_NAME = {s.name: s for s in _SAMPLES}
_MODULE = {"pydicom": "pydicom", "nilearn": "nilearn", "scikit-image": "skimage"}


def samples() -> list[Sample]:
    """All sample studies, in a stable order."""
    return list(_SAMPLES)


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def _find(name: str) -> Sample:
    key = _normalise(name)
    if key not in _BY_NAME:
        raise ValueError(
            f"unknown sample {name!r}; choose one of {', '.join(_BY_NAME)}"
        )
    return _BY_NAME[key]


def path(name: str) -> Path:
    """The installed file of a sample, found without importing its package.

    Parameters
    ----------
    name : str
        A sample's name (:func:`samples`).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    NotFoundError
        If the package holding it is not installed.
    """
    info = _find(name)
    if info.package == "pydicom-data" or info.package == "pydicom":
        from pydicom.data import get_testdata_file

        # With pydicom-data installed this is a local look-up, never a download.
        found = get_testdata_file(info.file, download=False)
        if found is None:
            raise NotFoundError(
                info.file,
                f"is not installed (needed by sample {info.name!r}).",
                "Install the package pydicom-data (pip install pydicom-data).",
            )
        return Path(found)
    spec = importlib.util.find_spec(_MODULE[info.package])
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            info.file,
            f"is not installed (needed by sample {info.name!r}).",
            f"Install the package {info.package}.",
        )
    found = Path(next(iter(spec.submodule_search_locations))) / info.file
    if not found.exists():
        raise NotFoundError(
            str(found),
            f"is missing from the installed {info.package}.",
            f"Reinstall {info.package}.",
        )
    return found


def sample(name: str) -> MedImage:
    """Load a sample study by name (see :func:`samples`).

    Parameters
    ----------
    name : str
        For example ``"head_ct"``, ``"chest_xray"`` or ``"brain_mri"``;
        spaces, hyphens and case do not matter.

    Returns
    -------
    MedImage
        With ``meta["sample"]``, ``meta["provenance"]`` and ``meta["license"]``.
    """
    from .io import load

    info = _find(name)
    image = load(path(info.name))
    meta = {
        **image.meta,
        "sample": info.name,
        "provenance": info.provenance,
        "license": info.license,
    }
    array, window = image.array, image.window
    if info.name.startswith("brain_mri_"):
        # The tissue maps ship as 0-255; as probabilities they are 0-1.
        array, window = (image.array / np.float32(255)).astype(np.float32), (0.5, 1.0)
        meta["unit"] = "probability"
    return dataclasses.replace(
        image, array=array, window=window, modality=info.modality, meta=meta
    )
