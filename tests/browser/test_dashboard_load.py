"""Eight people open the viewer dashboard at once; their kernels go when they leave.

A fresh Voila, started as ``make dashboard`` starts it plus a 20 s idle-kernel
culling (``dashboard_scenario.SHORT_CULLING``), serves
``notebooks/dashboards/``. Eight browser sessions (a thread, a Playwright and a
Chromium each) run the scenario of ``dashboard_scenario.py`` together: load,
window preset, click, readout equal to the CT's HU, clean page. While their
pages are open the server must hold eight kernels, whose memory is written to
``artifacts/dashboard_load.txt``; once the pages are closed, no kernel may be
left within a bounded time.
"""

from __future__ import annotations

import pytest
from dashboard_scenario import (
    culled,
    dashboard_server,
    kernel_memory,
    kernel_processes,
    run_sessions,
    sessions_table,
    wait_for_no_kernels,
)
from test_dashboard_server import DASHBOARDS

pytestmark = pytest.mark.browser

SESSIONS = 8
# Page closed: Voila shuts the kernel down at once; a lost request: culled
# after 20 s idle, checked every 5 s.
KERNELS_GONE_S = 45


def test_eight_concurrent_sessions_then_no_kernel(artifacts):
    with dashboard_server(DASHBOARDS, name="dashboard_load") as dashboards:
        server = dashboards.server
        assert not kernel_processes(server), "kernels before any page"
        sessions, memory = run_sessions(
            dashboards.url(), SESSIONS, while_open=lambda: kernel_memory(server)
        )
        try:
            gone = wait_for_no_kernels(server, KERNELS_GONE_S)
            left = f"no kernel left {gone:.1f} s after the pages closed"
        except TimeoutError as exc:
            gone, left = None, str(exc)
        report = "\n\n".join(
            [
                f"{SESSIONS} concurrent sessions of the viewer dashboard",
                sessions_table(sessions),
                "Memory while the pages were open",
                memory.table(),
                f"{left} (culled: {culled(server)})",
            ]
        )
        (artifacts / "dashboard_load.txt").write_text(report + "\n")

    failed = [s for s in sessions if not s.ok]
    assert not failed, report
    assert len(memory.kernels) == SESSIONS, report
    assert gone is not None, report
