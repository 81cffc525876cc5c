"""The fuzz tests' figures in the test summary: inputs, crashes, peak memory."""

from __future__ import annotations

import pytest

from tests.fuzz.loadcheck import Tally, warm_up

_TALLY = pytest.StashKey[Tally]()


@pytest.fixture(scope="session")
def fuzz_tally(request) -> Tally:
    """Counts of the fuzzed ``load`` calls of this session, per format."""
    tally = request.config.stash.get(_TALLY, None)
    if tally is None:
        warm_up()  # lazily loaded codecs must not count as an input's peak
        tally = request.config.stash[_TALLY] = Tally()
    return tally


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tally = config.stash.get(_TALLY, None)
    if tally is None or not tally.inputs:
        return
    terminalreporter.write_sep("-", "medimg_lab.load() fuzzing (hypothesis)")
    for line in tally.lines():
        terminalreporter.write_line(line)
