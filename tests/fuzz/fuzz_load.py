"""Coverage-guided fuzzing of :func:`medimg_lab.load` with atheris (libFuzzer).

One run per format (dicom, nifti, png), each seeded with the real seeds of
``tests/fuzz/loadcheck.py`` and a libFuzzer dictionary of the format's
keywords (transfer syntax UIDs, chunk names, magics). Every input goes through
:func:`loadcheck.probe`: ``load`` must return an image or raise a
MedImgError that a reader named, within the memory budget. A finding is saved
under ``--findings`` (default ``fuzz-findings/``) and fuzzing goes on.

Usage (from the repository root, with ``pip install -e '.[fuzz]'``)::

    python -m tests.fuzz.fuzz_load --seconds 60            # each format
    python -m tests.fuzz.fuzz_load --format png --runs 5000

After the fuzzers, the hand-made hostile inputs of ``tests/io/hostile.py``
(bombs, huge frame, item and page counts, broken page chains) are probed
once and reported the same way (``--no-hostile`` skips them).

It prints one line per format: inputs tried, unhandled exceptions, inputs
caught only by ``load``'s last-resort handler, hangs (more than
``HANG_SECONDS`` of CPU time), messages carrying a library's text, and the
peak memory against the budget; the exit status is 1 if any input crashed,
hung, let library text into its message or broke the budget. The file is not a test
module (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMATS = ("dicom", "nifti", "png")

DICTIONARY = {
    "dicom": [
        "DICM",
        *(
            f"1.2.840.10008.1.2{s}\\x00"
            for s in (
                "",
                ".1",
                ".2",
                ".1.99",
                ".4.50",
                ".4.51",
                ".4.57",
                ".4.70",
                ".4.80",
                ".4.81",
                ".4.90",
                ".4.91",
                ".4.201",
                ".5",
            )
        ),
        "MONOCHROME1",
        "YBR_FULL_422",
        "PALETTE COLOR",
        "\\xe0\\x7f\\x10\\x00",  # PixelData
        "\\x28\\x00\\x10\\x00",  # Rows
        "\\x28\\x00\\x11\\x00",  # Columns
        "\\x28\\x00\\x08\\x00",  # NumberOfFrames
        "\\xfe\\xff\\x00\\xe0",  # Item
        "\\xfe\\xff\\xdd\\xe0",  # Sequence delimiter
        "\\xff\\xc0",  # JPEG SOF0
        "\\xff\\xc3",  # JPEG SOF3
        "\\xff\\xf7",  # JPEG-LS SOF55
        "\\xff\\x51",  # J2K SIZ
        "\\xff\\xdc",  # DNL
    ],
    "nifti": [
        "n+1\\x00",
        "ni1\\x00",
        "n+2\\x00",
        "\\x5c\\x01\\x00\\x00",
        "\\x1f\\x8b\\x08",
    ],
    "png": ["IHDR", "IDAT", "IEND", "PLTE", "tRNS", "zTXt", "iCCP", "acTL", "fcTL"],
}


def _child(args: argparse.Namespace) -> None:
    """Fuzz one format in this process until time or runs are used up."""
    import atheris

    with atheris.instrument_imports(include=["medimg_lab", "pydicom", "nibabel"]):
        import medimg_lab  # noqa: F401

    from tests.fuzz.loadcheck import (
        PEAK_BUDGET,
        SEEDS,
        Tally,
        probe,
        seed,
        seed_format,
        warm_up,
    )

    fmt = args.format
    warm_up()
    findings = Path(args.findings)
    tally = Tally()
    deadline = time.monotonic() + args.seconds
    last_write = 0.0

    def write_stats() -> None:
        c = tally.counts[fmt]
        Path(args.stats).write_text(
            json.dumps({"format": fmt, **vars(c), "lines": tally.lines()})
        )

    def finish() -> None:
        write_stats()
        sys.stdout.flush()
        os._exit(0)  # libFuzzer would otherwise go on (or exit without atexit)

    def one_input(data: bytes) -> None:
        nonlocal last_write
        outcome = probe(data)
        tally.add(fmt, outcome)
        if (
            outcome.crashed
            or outcome.hung
            or outcome.library
            or outcome.peak > PEAK_BUDGET
        ):
            findings.mkdir(parents=True, exist_ok=True)
            path = findings / f"{fmt}-{hashlib.sha256(data).hexdigest()[:12]}.bin"
            path.write_bytes(data)
            print(f"\nFINDING {path}: {outcome.describe(data)}", flush=True)
            write_stats()
        now = time.monotonic()
        if now - last_write > 1.0:
            write_stats()
            last_write = now
        done = tally.counts[fmt].inputs
        if now >= deadline or (args.runs and done >= args.runs):
            finish()

    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{fmt}-"))
    for name in SEEDS:
        if seed_format(name) == fmt:
            (corpus / name).write_bytes(seed(name))
    dictionary = corpus.with_suffix(".dict")
    dictionary.write_text("".join(f'"{kw}"\n' for kw in DICTIONARY[fmt]))
    max_len = max(len(seed(n)) for n in SEEDS if seed_format(n) == fmt) + 4096
    argv = [
        sys.argv[0],
        str(corpus),
        f"-dict={dictionary}",
        f"-max_len={max_len}",
        f"-max_total_time={args.seconds + 60}",
        "-rss_limit_mb=4096",
        "-timeout=60",
        "-print_final_stats=0",
        "-close_fd_mask=0",
        f"-seed={args.seed}",
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def _report(stats: dict | None, fmt: str, returncode: int) -> tuple[str, bool]:
    if stats is None:
        return f"{fmt}: no figures (the fuzzer exited with {returncode})", False
    line = stats["lines"][0] if stats["lines"] else f"{fmt}: 0 inputs"
    ok = stats["unhandled"] == 0 and stats["net"] == 0
    ok = ok and stats.get("hangs", 0) == 0 and stats.get("library", 0) == 0
    ok = ok and max(stats["peak_traced"], stats["peak_rss"]) <= stats.get(
        "budget", float("inf")
    )
    return line, ok and returncode == 0


def _hostile(findings: str) -> tuple[list[str], bool]:
    """Probe the hand-made hostile inputs of ``tests/io/hostile.py`` once.

    Bombs, huge counts and broken page chains: each must be refused (or
    load) within the budget, without a crash, a hang or library text.
    Runs in a child process, so that the fuzzers' instrumentation and
    memory do not mix with it.
    """
    code = "\n".join(
        [
            "import json, warnings",
            "warnings.simplefilter('ignore')",
            "from tests.fuzz.loadcheck import (",
            "    PEAK_BUDGET, Tally, probe, sniff_format, warm_up)",
            "from tests.io.hostile import HOSTILE",
            "warm_up()",
            "tally, bad = Tally(), []",
            "for name, make in sorted(HOSTILE.items()):",
            "    data = make()",
            "    outcome = probe(data)",
            "    tally.add(sniff_format(data), outcome)",
            "    if (outcome.crashed or outcome.hung or outcome.library",
            "            or outcome.peak > PEAK_BUDGET):",
            "        bad.append(name + ': ' + outcome.describe(data))",
            "print(json.dumps({'lines': tally.lines(), 'bad': bad}))",
        ]
    )
    done = subprocess.run(  # noqa: S603 this interpreter, code built here
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return [f"hostile inputs: no figures (exit {done.returncode})"], False
    lines = [f"hostile inputs, {line}" for line in result["lines"]]
    for finding in result["bad"]:
        print(f"FINDING (hostile) {finding}", flush=True)
    if result["bad"]:
        Path(findings).mkdir(parents=True, exist_ok=True)
        (Path(findings) / "hostile.txt").write_text("\n".join(result["bad"]) + "\n")
    return lines, not result["bad"] and done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=FORMATS, action="append")
    parser.add_argument(
        "--seconds", type=float, default=60, help="per format (default 60)"
    )
    parser.add_argument(
        "--runs", type=int, default=0, help="inputs per format (0: no limit)"
    )
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer seed")
    parser.add_argument("--findings", default="fuzz-findings")
    parser.add_argument(
        "--no-hostile",
        action="store_true",
        help="skip the hand-made hostile inputs (tests/io/hostile.py)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.format = args.format[0]
        _child(args)
        return 0  # not reached

    from tests.fuzz.loadcheck import PEAK_BUDGET

    lines, all_ok = [], True
    for fmt in args.format or FORMATS:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            stats_path = Path(fh.name)
        command = [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_load",
            "--child",
            f"--format={fmt}",
            f"--seconds={args.seconds}",
            f"--runs={args.runs}",
            f"--seed={args.seed}",
            f"--findings={args.findings}",
            f"--stats={stats_path}",
        ]
        print(f"== fuzzing load() on {fmt} for {args.seconds:g} s", flush=True)
        done = subprocess.run(  # noqa: S603 this interpreter on this module, argv built here
            command, stdout=sys.stdout, stderr=subprocess.DEVNULL, check=False
        )
        try:
            stats = json.loads(stats_path.read_text() or "null")
        except (OSError, ValueError):
            stats = None
        stats_path.unlink(missing_ok=True)
        if stats is not None:
            stats["budget"] = PEAK_BUDGET
        line, ok = _report(stats, fmt, done.returncode)
        lines.append(line)
        all_ok &= ok
    if not args.no_hostile:
        print("== probing the hand-made hostile inputs", flush=True)
        found, ok = _hostile(args.findings)
        lines.extend(found)
        all_ok &= ok
    print("\nmedimg_lab.load() fuzzing (atheris):")
    for line in lines:
        print("  " + line)
    print("  result: " + ("no crashes" if all_ok else f"FAILED, see {args.findings}/"))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
