"""Slow filters while a slider is dragged: a coarser preview during the drag,
the full-resolution result once the slider rests (issue 20, item 3)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from medimg_lab.widgets import ProcessingPanel

import medimg_lab as ml
from medimg_lab import processing as P


@pytest.fixture(scope="module")
def ct():
    return ml.data.sample("head_ct")


def user_moves(control, value):
    """A slider move as the page sends it."""
    control.set_state({"value": value})


def _in_a_fresh_thread(fn, *args):
    """``fn(*args)`` in a thread of its own, with no event loop of its own.

    Playwright's sync API (the browser tests, earlier in the same process)
    leaves the main thread with an asyncio loop marked running, so neither
    ``asyncio.run`` nor "no running loop" can be had there.
    """
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the panel did not finish within 120 s"
    if "error" in out:
        raise out["error"]
    return out["value"]


async def _until_settled(panel, limit_s=10.0):
    """Let the kernel loop run until the panel drew its full preview (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not panel.settled and loop.time() < end:
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("operation", "name", "values", "call"),
    [
        (
            "bilateral",
            "sigma_mm",
            (1.0, 2.0, 2.5),
            lambda a, s, v: P.bilateral(a, sigma_mm=v, spacing=s),
        ),
        (
            "non_local_means",
            "patch",
            (3, 7, 5),
            lambda a, s, v: P.non_local_means(a, patch=v),
        ),
    ],
)
def test_drag_previews_coarse_and_rests_on_the_full_result(
    ct, operation, name, values, call
):
    async def drag():
        # budget 0: every move of this slow filter is previewed coarse
        panel = ProcessingPanel(
            ct, operation=operation, drag_budget_ms=0, settle_s=0.05
        )
        source = panel.preview_input
        control = panel._controls[name]
        for value in values:
            user_moves(control, value)
            assert not panel.settled
            assert panel.preview.shape == source.array.shape
            assert panel.preview.dtype == np.float32
        full = call(source.array, source.spacing, values[-1])
        assert not np.array_equal(panel.preview, full)  # a coarse look, not it
        await _until_settled(panel)
        assert panel.settled
        np.testing.assert_array_equal(panel.preview, full)
        assert panel.message == ""

    _in_a_fresh_thread(asyncio.run, drag())


def test_fast_operations_and_code_never_go_coarse(ct):
    async def moves():
        gaussian = ProcessingPanel(ct, operation="gaussian")  # default budget
        user_moves(gaussian._controls["sigma_mm"], 2.0)
        slow = ProcessingPanel(ct, operation="bilateral", drag_budget_ms=0)
        slow.set_params(sigma_mm=2.0)  # from code: the full result at once
        return gaussian.settled, slow.settled, slow

    gaussian_settled, slow_settled, slow = _in_a_fresh_thread(asyncio.run, moves())
    assert gaussian_settled and slow_settled
    source = slow.preview_input
    np.testing.assert_array_equal(
        slow.preview, P.bilateral(source.array, sigma_mm=2.0, spacing=source.spacing)
    )


def test_without_a_running_loop_a_move_draws_the_full_result(ct):
    def move():
        panel = ProcessingPanel(ct, operation="bilateral", drag_budget_ms=0)
        user_moves(panel._controls["sigma_mm"], 3.0)
        return panel

    panel = _in_a_fresh_thread(move)
    assert panel.settled
    source = panel.preview_input
    np.testing.assert_array_equal(
        panel.preview, P.bilateral(source.array, sigma_mm=3.0, spacing=source.spacing)
    )
