"""The ``medimg-lab`` command line.

Exit codes, for scripts:

- 0: success (for ``run``: every study processed);
- 1: bad input, nothing done (a missing file, an invalid recipe); the message
  on stderr names the problem and the fix;
- 2: wrong usage (argparse; ``ops NAME`` with an unknown NAME);
- 3: ``run`` finished, but some studies failed; their reasons are in the
  results table and on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
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
    from pathlib import Path

    from .io import save

    chosen = data.samples()
    if args.names:
        known = {s.name for s in chosen}
        unknown = sorted(set(args.names) - known)
        if unknown:
            raise MedImgError(
                ", ".join(unknown),
                "is not a sample." if len(unknown) == 1 else "are not samples.",
                f"Choose among {', '.join(sorted(known))}.",
            )
        chosen = [s for s in chosen if s.name in args.names]
    for s in chosen:
        if args.export:
            folder = Path(args.export)
            folder.mkdir(parents=True, exist_ok=True)
            written = save(data.sample(s.name), folder / f"{s.name}.nii.gz")
            print(f"wrote {written}")
            continue
        print(f"{s.name:<14} {s.modality:<3} {s.description}")
        if args.verbose:
            print(f"{'':<18}from: {s.provenance}")
            print(f"{'':<18}license: {s.license}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from . import batch

    if args.scheduler and args.mode:
        raise MedImgError(
            "--scheduler", f"cannot be combined with --{args.mode}.", "Give one."
        )
    client = args.scheduler or args.mode
    result = batch.run(
        args.recipe,
        args.inputs,
        args.out,
        client=client,
        workers=args.workers,
        force=args.force,
        save_images=args.save_images,
        format=args.format,
        progress=not args.quiet,
        store=args.store,
        cache=args.cache,
        dicom_results=args.dicom,
    )
    counts = result.provenance["counts"]
    print(
        f"{counts['studies']} studies: {counts['ok']} ok ({counts['resumed']} from an "
        f"earlier run), {counts['failed']} failed; results in {result.out}"
    )
    for row in result.failed.itertuples():
        print(f"failed: {row.input}: {row.reason}", file=sys.stderr)
    return 3 if counts["failed"] else 0


def _validate(args: argparse.Namespace) -> int:
    from .recipe import Recipe

    recipe = Recipe.load(args.file)
    steps = ", ".join(step.op for step in recipe.steps)
    print(f"valid: {len(recipe.steps)} steps ({steps})")
    return 0


def _spec_facts(spec) -> dict:
    """One declared parameter as plain facts, from its declaration."""
    import inspect
    import typing

    p = spec.param
    if p.file:
        many = typing.get_origin(spec.type) in (list, tuple)
        kind = f"list of {p.file} files" if many else f"{p.file} file"
    elif p.choices is not None:
        kind = "choice"
    else:
        kind = getattr(spec.type, "__name__", str(spec.type))
    facts = {
        "name": spec.name,
        "type": kind,
        "unit": p.unit,
        "doc": p.doc,
        "required": spec.default is inspect.Parameter.empty,
    }
    if not facts["required"]:
        facts["default"] = spec.default
    if p.choices is not None:
        facts["choices"] = list(p.choices)
    if p.min is not None or p.max is not None:
        facts["range"] = p.interval()
    if p.slider is not None:
        facts["slider"] = list(p.slider)
    if p.odd:
        facts["odd"] = True
    return facts


def _op_facts(op) -> dict:
    return {
        "name": op.name,
        "stage": op.stage,
        "role": op.role,
        "label": op.label,
        "keeps_units": op.keeps_units,
        "seeded": op.seeded,
        "ndim": list(op.ndim),
        "input": op.input,
        "parameters": [_spec_facts(s) for s in op.params.values()],
    }


def _spec_line(f: dict) -> str:
    if "choices" in f:
        allowed = "one of " + ", ".join(map(str, f["choices"]))
    elif "range" in f:
        allowed = f"{f['type']} in {f['range']}{' ' + f['unit'] if f['unit'] else ''}"
    else:
        allowed = f["type"] + (f" ({f['unit']})" if f["unit"] else "")
    if f.get("odd"):
        allowed += ", odd"
    if "slider" in f:
        allowed += f" (slider {f['slider'][0]:g} to {f['slider'][1]:g})"
    default = "required" if f["required"] else f"default {f['default']!r}"
    return f"    {f['name']:<16} {allowed}; {default}. {f['doc']}".rstrip()


def _ops(args: argparse.Namespace) -> int:
    import difflib

    from .params import OPERATIONS

    if args.name is not None and args.name not in OPERATIONS:
        close = difflib.get_close_matches(args.name, list(OPERATIONS), n=3)
        hint = (
            f" Did you mean {' or '.join(close)}?"
            if close
            else " Run medimg-lab ops to list them."
        )
        print(f"error: {args.name!r} is not an operation.{hint}", file=sys.stderr)
        return 2
    chosen = [OPERATIONS[args.name]] if args.name else list(OPERATIONS.values())
    facts = [_op_facts(op) for op in chosen]
    if args.json:
        print(json.dumps(facts if args.name is None else facts[0], indent=2))
        return 0
    stage = None
    for f in facts:
        if args.name is None and f["stage"] != stage:
            stage = f["stage"]
            count = sum(1 for g in facts if g["stage"] == stage)
            print(f"{stage} ({count} operations)")
        role = f["role"] + (f", seeded by {f['seeded']}" if f["seeded"] else "")
        role += f"; {' or '.join(f'{n}D' for n in f['ndim'])} {f['input']}"
        print(f"  {f['name']}: {f['label']} [{role}]")
        for spec in f["parameters"]:
            print(_spec_line(spec))
        if not f["parameters"]:
            print("    (no parameters)")
    return 0


def _deid_salt(args: argparse.Namespace) -> str | None:
    """The salt from --salt-file or MEDIMG_DEID_SALT; never from the command line."""
    from .io.deid import SALT_ENV, read_salt

    if args.salt is not None:
        raise MedImgError(
            "--salt",
            "is not accepted: a secret on the command line shows in ps and in "
            "/proc/<pid>/cmdline.",
            f"Put the salt in a file and pass --salt-file FILE, or set {SALT_ENV}.",
        )
    if args.salt_file:
        try:
            return read_salt(args.salt_file)
        except ValueError as err:
            raise MedImgError(
                "--salt-file", str(err), "The file must hold the secret as text."
            ) from None
    if os.environ.get(SALT_ENV, "").strip():
        return None  # deidentify reads it
    print(
        "warning: no salt given (--salt-file or "
        f"{SALT_ENV}): this file's study and series UIDs will not match those "
        "of other files of its study exported separately",
        file=sys.stderr,
    )
    return None


def _deidentify(args: argparse.Namespace) -> int:
    salt = _deid_salt(args)
    report = export_deidentified(
        args.file,
        args.out,
        salt=salt,
        date_shift_days=args.shift_days,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.out}: {len(report.removed)} removed, {len(report.emptied)} "
        f"emptied, {len(report.replaced)} replaced, {report.uids_remapped} UIDs "
        f"remapped (PS3.15 {report.edition} Table E.1-1)"
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

    samples = sub.add_parser("samples", help="list or export the sample studies")
    samples.add_argument("names", nargs="*", help="samples to show or export")
    samples.add_argument("-v", "--verbose", action="store_true")
    samples.add_argument("--export", metavar="DIR", help="write them as NIfTI here")
    samples.set_defaults(run=_samples)

    run = sub.add_parser("run", help="run a recipe over many studies (Dask)")
    run.add_argument("recipe", help="recipe JSON file")
    run.add_argument(
        "inputs",
        nargs="+",
        help="files, folders, globs, CSV manifest; or one cohort query: "
        "dicomweb://HOST:PORT/PATH?ModalitiesInStudy=CT&StudyDate=20200101-20201231 "
        "(http; dicomwebs:// or https:// for https) or dimse://AET@HOST:PORT?Modality=CT",
    )
    run.add_argument("--out", required=True, help="output folder")
    run.add_argument("--scheduler", help="address of a dask.distributed scheduler")
    run.add_argument("--workers", type=int, help="local worker processes")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--threads",
        dest="mode",
        action="store_const",
        const="threads",
        help="one process with threads instead of worker processes",
    )
    mode.add_argument(
        "--serial",
        dest="mode",
        action="store_const",
        const="serial",
        help="a plain loop, no Dask",
    )
    mode.add_argument(
        "--processes",
        dest="mode",
        action="store_const",
        const="processes",
        help="local worker processes even for a small cohort (default: the "
        "cheapest runner, chosen from the first studies' cost)",
    )
    run.add_argument("--force", action="store_true", help="recompute finished studies")
    run.add_argument("--save-images", action="store_true", help="write images too")
    run.add_argument("--format", choices=("nii.gz", "png"), default="nii.gz")
    run.add_argument(
        "--dicom",
        action="store_true",
        help="also write each DICOM study's SEG and SR (TID 1500) in OUT/dicom/ID/",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--store",
        action="store_true",
        help="cohort query: send each series' SEG and SR back (STOW-RS or C-STORE)",
    )
    run.add_argument(
        "--cache",
        help="cohort query: instance cache folder the workers share "
        "(default $MEDIMG_ARCHIVE_CACHE or ~/.cache/medimg-lab/instances)",
    )
    run.set_defaults(run=_run)

    ops = sub.add_parser(
        "ops",
        help="the operations a recipe can name, with parameters, units, ranges "
        "and defaults",
    )
    ops.add_argument("name", nargs="?", help="show this operation only")
    ops.add_argument("--json", action="store_true", help="print JSON")
    ops.set_defaults(run=_ops)

    recipes = sub.add_parser("recipes", help="work with recipe files")
    recipes_sub = recipes.add_subparsers(dest="recipes_command", required=True)
    validate = recipes_sub.add_parser("validate", help="check a recipe file")
    validate.add_argument("file")
    validate.set_defaults(run=_validate)

    deid = sub.add_parser(
        "deidentify", help="write a DICOM copy without patient identifiers"
    )
    deid.add_argument("file")
    deid.add_argument("out")
    deid.add_argument(
        "--salt-file",
        metavar="FILE",
        help="file holding the secret salt that keeps UIDs consistent across the "
        "files of a study (or set MEDIMG_DEID_SALT); never the salt itself",
    )
    # Refused with a message: a secret on the command line shows in ps.
    deid.add_argument("--salt", help=argparse.SUPPRESS)
    deid.add_argument(
        "--shift-days",
        type=int,
        help="shift dates and times by N days plus a part of a day derived from "
        "the salt, instead of removing them",
    )
    deid.add_argument("--overwrite", action="store_true")
    deid.set_defaults(run=_deidentify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program's name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 1 after an error (printed as one sentence).
    """
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except MedImgError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
