"""Audit a pinned requirements file with pip-audit and say plainly what was checked.

Run by ``make audit`` (and so by ``make test``)::

    python tools/audit.py requirements.lock --timeout 300

pip-audit alone is misleading where its vulnerability service cannot be reached:
with PyPI's JSON API blocked it skips every package as "not found on PyPI" and
still prints "No known vulnerabilities found". This wrapper reads pip-audit's
JSON report and prints how many pinned packages were really audited.

Exit status
-----------
0
    Every audited package is free of known vulnerabilities, including the case
    where the service could not be reached or pip-audit timed out: then the
    output says ``NOT AUDITED`` and why, and the build goes on.
1
    pip-audit found a known vulnerability in a pinned package, or failed for a
    reason other than the network (a malformed lock file, for instance).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# pip-audit sits beside this interpreter (the venv's bin/).
PIP_AUDIT = Path(sys.executable).parent / "pip-audit"
HEADLINE = "pip-audit:"
# Words in pip-audit's last error line that mean the service was not reached
# (requests' ConnectionError and timeouts, pip-audit's own ConnectionError).
NETWORK_WORDS = ("connect", "resolve", "timed out", "timeout", "max retries", "ssl")


def audit_command(lock, report, *, socket_timeout=15, extra=()):
    """Return the pip-audit argv that audits ``lock`` and writes JSON to ``report``.

    Parameters
    ----------
    lock : path
        A requirements file where every package is pinned (``name==version``).
    report : path
        Where pip-audit writes its JSON report.
    socket_timeout : float
        Seconds pip-audit waits on one network read before giving up.
    extra : sequence of str
        More pip-audit options, e.g. ``("--ignore-vuln", "GHSA-...")``.
    """
    return [
        str(PIP_AUDIT),
        "--requirement",
        str(lock),
        "--no-deps",  # the lock is already resolved and pinned
        "--disable-pip",  # never build or install anything to audit it
        "--progress-spinner",
        "off",
        "--timeout",
        str(socket_timeout),
        "--format",
        "json",
        "--output",
        str(report),
        *extra,
    ]


def summarize(report, *, returncode, stderr=""):
    """Turn pip-audit's JSON report and exit status into text and an exit status.

    Parameters
    ----------
    report : dict or None
        pip-audit's JSON report (``{"dependencies": [...]}``), or None when it
        wrote none (it stopped on a network error or on a bad lock file).
    returncode : int
        pip-audit's exit status.
    stderr : str
        pip-audit's standard error; its last line is quoted when it wrote no
        report.

    Returns
    -------
    text : str
        Lines for the build log; the first says whether anything was audited.
    status : int
        1 if a known vulnerability was found or pip-audit failed for a reason
        other than the network, else 0.
    """
    if report is None:
        last = next((s for s in reversed(stderr.splitlines()) if s.strip()), "")
        why = last.strip() or f"pip-audit exited with status {returncode}"
        if not any(word in why.lower() for word in NETWORK_WORDS):
            return f"{HEADLINE} FAILED, not a network problem: {why}", 1
        return (
            f"{HEADLINE} NOT AUDITED: the vulnerability service could not be "
            f"reached ({why}). Not a build failure; run 'make audit' where "
            "https://pypi.org is reachable.",
            0,
        )
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    skipped = [d for d in deps if "skip_reason" in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    lines = []
    if not audited:
        example = skipped[0]["skip_reason"] if skipped else "an empty report"
        lines.append(
            f"{HEADLINE} NOT AUDITED: the vulnerability service could not be "
            f"reached; it had an answer for none of the {len(deps)} pinned "
            f"packages (pip-audit said, e.g.: {example}). Not a build failure; "
            "run 'make audit' where https://pypi.org is reachable."
        )
        return "\n".join(lines), 0
    found = sum(len(d["vulns"]) for d in vulnerable)
    lines.append(
        f"{HEADLINE} audited {len(audited)} of {len(deps)} pinned packages: "
        f"{found} known vulnerabilities in {len(vulnerable)} packages."
    )
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fix = ", ".join(vuln.get("fix_versions", [])) or "no fixed version"
            lines.append(
                f"  {dep['name']}=={dep['version']}: {vuln['id']} (fixed in {fix})"
            )
    if skipped:
        lines.append(f"  NOT AUDITED ({len(skipped)}):")
        lines += [f"    {d['name']}: {d['skip_reason']}" for d in skipped]
    return "\n".join(lines), 1 if vulnerable else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path, help="pinned requirements file")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds before the whole audit is stopped (default 300)",
    )
    parser.add_argument(
        "--socket-timeout",
        type=float,
        default=15,
        help="seconds pip-audit waits on one network read (default 15)",
    )
    args, extra = parser.parse_known_args(argv)
    if not PIP_AUDIT.is_file():
        parser.error(f"{PIP_AUDIT} not found; run 'make install'")
    if not args.lock.is_file():
        parser.error(f"lock file {args.lock} not found; run 'make lock'")
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "audit.json"
        argv = audit_command(
            args.lock, report_path, socket_timeout=args.socket_timeout, extra=extra
        )
        try:
            run = subprocess.run(  # noqa: S603 fixed argv: the venv's pip-audit, no shell
                argv, capture_output=True, text=True, timeout=args.timeout
            )
        except subprocess.TimeoutExpired:
            print(
                f"{HEADLINE} NOT AUDITED: no answer from the vulnerability service "
                f"within {args.timeout:g} s; pip-audit was stopped. Not a build "
                "failure."
            )
            return 0
        report = None
        if report_path.is_file() and report_path.stat().st_size:
            report = json.loads(report_path.read_text())
    text, status = summarize(report, returncode=run.returncode, stderr=run.stderr)
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
