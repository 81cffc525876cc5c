"""Generate ``medimg_lab/io/_deid_table.py`` from a shipped copy of PS3.15 Table E.1-1.

The source is KitwareMedical's ``dicom-anonymizer`` (BSD-3-Clause), whose
``dicomanonymizer/dicom_anonymization_databases/dicomfields_<edition>.py`` are
generated from the standard's Table E.1-1 (Basic Profile column), one file per
edition of the standard, with an action list per attribute. This script reads
such a file as text (it is parsed, never imported or executed) and writes our
own module, so that medimg-lab carries no run-time dependency on it. To update
to a newer edition of the standard::

    pip download --no-deps dicom-anonymizer -d /tmp/da
    python tools/gen_deid_table.py /tmp/da/dicom_anonymizer-*.whl
    ruff format medimg_lab/io/_deid_table.py

The newest ``dicomfields_*.py`` in the wheel is used unless ``--edition`` names
another one. A single ``dicomfields_*.py`` file may be given instead of a wheel.

Checked when generated (dicom-anonymizer 2.1.0, December 2026): its 2024b list
agrees attribute for attribute, action for action, with the Basic Profile
column of innolitics/dicom-standard's ``confidentiality_profile_attributes.json``
(rev2024b, parsed from the standard's HTML: 617 attributes, 3 repeating-group
rows and the private-attribute row); 2026c adds 35 attributes and changes no
action. The option column "Rtn. Long. Modif. Dates Opt." of that file is
what ``medimg_lab.io.deid`` follows for shifted dates.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "medimg_lab" / "io" / "_deid_table.py"

#: The lists of dicom-anonymizer, and the Table E.1-1 action each one stands for.
LISTS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
_ENTRY = re.compile(
    r"\(\s*(0x[0-9A-Fa-f]{4})\s*,\s*(0x[0-9A-Fa-f]{4})\s*"
    r"(?:,\s*(0x[0-9A-Fa-f]{4})\s*,\s*(0x[0-9A-Fa-f]{4})\s*)?,?\s*\)\s*,?\s*#\s*([^\n]*)"
)
_LIST = re.compile(r"^([A-Z_]+)\s*=\s*\[(.*?)^\]", re.M | re.S)

LICENSE = """\
# Derived from dicom-anonymizer (https://github.com/KitwareMedical/dicom-anonymizer),
# Copyright 2020, Kitware Europe, distributed under the BSD 3-Clause License:
# redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the copyright notice, this list of
# conditions and the disclaimer are retained. THIS SOFTWARE IS PROVIDED BY THE
# COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED
# WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
# MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED."""


def read_source(path: Path, edition: str | None) -> tuple[str, str, str]:
    """``(text, edition, origin)`` of the chosen ``dicomfields_*.py``."""
    if path.suffix == ".py":
        name = path.stem
        return path.read_text(encoding="utf-8"), name.split("_", 1)[1], path.name
    with zipfile.ZipFile(path) as wheel:
        names = sorted(
            n for n in wheel.namelist() if re.search(r"dicomfields_\d{4}\w*\.py$", n)
        )
        if edition:
            names = [n for n in names if n.endswith(f"dicomfields_{edition}.py")]
        if not names:
            raise SystemExit(f"{path}: no dicomfields_{edition or '*'}.py inside")
        chosen = names[-1]
        origin = f"{Path(path).name}, {Path(chosen).name}"
        return (
            wheel.read(chosen).decode("utf-8"),
            Path(chosen).stem.split("_", 1)[1],
            origin,
        )


def parse(
    text: str,
) -> tuple[dict[int, tuple[str, str]], list[tuple[int, int, str, str]]]:
    """The single tags and the masked (repeating-group) rows, with action and name."""
    tags: dict[int, tuple[str, str]] = {}
    masked: list[tuple[int, int, str, str]] = []
    for match in _LIST.finditer(text):
        list_name, body = match.group(1), match.group(2)
        if list_name not in LISTS:
            continue
        action = LISTS[list_name]
        expected = len(ast.literal_eval(f"[{body}]"))
        entries = _ENTRY.findall(body)
        if len(entries) != expected:
            raise SystemExit(
                f"{list_name}: parsed {len(entries)} of {expected} entries"
            )
        for group, elem, gmask, emask, name in entries:
            g, e = int(group, 16), int(elem, 16)
            name = name.strip()
            if gmask:
                mask = (int(gmask, 16) << 16) | int(emask, 16)
                masked.append((mask, ((g << 16) | e) & mask, action, name))
                continue
            tag = (g << 16) | e
            if tag in tags and tags[tag][0] != action:
                raise SystemExit(f"({g:04X},{e:04X}) has two actions")
            tags[tag] = (action, name)
    missing = set(LISTS) - {m.group(1) for m in _LIST.finditer(text)}
    if missing:
        raise SystemExit(f"lists missing from the source: {sorted(missing)}")
    return tags, masked


def render(tags, masked, edition: str, origin: str) -> str:
    lines = [
        '"""PS3.15 Table E.1-1 (Basic Profile): every attribute with its action.',
        "",
        "GENERATED by tools/gen_deid_table.py: do not edit; regenerate it from a",
        "newer dicom-anonymizer release to follow a newer edition of the standard.",
        "",
        "Actions: X remove, Z zero length, D dummy value, U new UID; a combination",
        "such as X/Z/D lets the profile pick the first one that keeps the object",
        "valid; X/Z/U* keeps a sequence only with its instance UIDs replaced.",
        '"""',
        "",
        LICENSE,
        "",
        "from __future__ import annotations",
        "",
        f'EDITION = "{edition}"',
        f'SOURCE = "{origin}"',
        "",
        "#: tag -> (action, attribute name as the standard spells it)",
        "ATTRIBUTES: dict[int, tuple[str, str]] = {",
    ]
    for tag in sorted(tags):
        action, name = tags[tag]
        lines.append(f"    0x{tag:08X}: ({action!r}, {name!r}),")
    lines += [
        "}",
        "",
        "#: Repeating groups: (mask, value, action, name); a tag t matches when",
        "#: t & mask == value (curves 50xx, overlay data and comments 60xx).",
        "MASKED: tuple[tuple[int, int, str, str], ...] = (",
    ]
    for mask, value, action, name in masked:
        lines.append(f"    (0x{mask:08X}, 0x{value:08X}, {action!r}, {name!r}),")
    lines += [
        ")",
        "",
        "#: Private attributes (odd groups) are removed: the table's last row.",
        'PRIVATE_ACTION = "X"',
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", type=Path, help="dicom-anonymizer wheel or dicomfields_*.py"
    )
    parser.add_argument(
        "--edition", help="e.g. 2026c (default: the newest in the wheel)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text, edition, origin = read_source(args.source, args.edition)
    tags, masked = parse(text)
    args.out.write_text(render(tags, masked, edition, origin), encoding="utf-8")
    print(
        f"wrote {args.out}: edition {edition}, {len(tags)} attributes and "
        f"{len(masked)} repeating-group rows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
