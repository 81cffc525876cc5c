"""The ``medimg-lab`` command line.

Exit codes: 0 success, 1 bad input (a MedImgError, message on stderr),
2 wrong usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__, data
from .errors import MedImgError
from .io import export_deidentified, load

__all__ = ["main"]


def _info(args: argparse.Namespace) -> int:
    image = load(args.file, series=args.series)
    facts = {
        "modality": image.modality,
        "shape": list(image.array.shape),
        "dtype": str(image.array.dtype),
        "spacing_mm": [round(s, 4) for s in image.spacing],
        "window": list(image.window),
        "meta": image.meta,
    }
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
        return 0
    print(f"modality   {image.modality}")
    print(f"shape      {' x '.join(map(str, image.array.shape))} ({image.array.dtype})")
    print(f"spacing    {' x '.join(f'{s:.4g}' for s in image.spacing)} mm")
    print(f"window     center {image.window[0]:g}, width {image.window[1]:g}")
    for key, value in sorted(image.meta.items()):
        print(f"{key:<26} {value}")
    return 0


def _samples(args: argparse.Namespace) -> int:
    for s in data.samples():
        print(f"{s.name:<14} {s.modality:<3} {s.description}")
        if args.verbose:
            print(f"{'':<18}from: {s.provenance}")
            print(f"{'':<18}license: {s.license}")
    return 0


def _deidentify(args: argparse.Namespace) -> int:
    report = export_deidentified(
        args.file,
        args.out,
        salt=args.salt,
        date_shift_days=args.shift_days,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.out}: {len(report.removed)} removed, {len(report.emptied)} "
        f"emptied, {report.uids_remapped} UIDs remapped"
    )
    if report.burned_in_annotation:
        print(
            "warning: the image may carry burned-in text (names, dates) in its "
            "pixels; check it before sharing",
            file=sys.stderr,
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medimg-lab",
        description="Medical image analysis on real CT, MR and X-ray data.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="header facts of an image, without identifiers")
    info.add_argument("file", help="DICOM file or series folder, NIfTI, PNG, ...")
    info.add_argument("--series", help="series number, for a folder of several")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info)

    samples = sub.add_parser("samples", help="list the bundled sample studies")
    samples.add_argument("-v", "--verbose", action="store_true")
    samples.set_defaults(run=_samples)

    deid = sub.add_parser(
        "deidentify", help="write a DICOM copy without patient identifiers"
    )
    deid.add_argument("file")
    deid.add_argument("out")
    deid.add_argument("--salt", help="keep UIDs consistent across files of a study")
    deid.add_argument(
        "--shift-days", type=int, help="shift dates by N days instead of removing"
    )
    deid.add_argument("--overwrite", action="store_true")
    deid.set_defaults(run=_deidentify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except MedImgError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
