"""The Studies panel in Voila, in Chromium: the archive's studies, a series opened.

A module Orthanc (loopback only, :mod:`medimg_lab.archive.testing`) holds
the sample studies and two multi-slice CT series; a ``make dashboard``
Voila is started with its ``MEDIMG_ARCHIVE_*`` variables in its
environment, as a clinician's server would be. The tests search through
the page's own form, check that the seeded studies are listed with their
patients' names and IDs, open a series with the page's button and wait for
the viewer to paint its middle slice exactly as Python windows it. The
session's Voila (``dashboard_site``) has no archive: its panel says how to
configure one. Screenshots of both dashboards with the panel, at 1366 x 768
and 1920 x 1080, go to ``artifacts/studies_<dashboard>_<w>x<h>.png``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import _free_port, _isolated_env, _stop, start_dashboards
from medimg_lab.widgets.dashboards._base import describe
from medimg_lab.widgets.studies import NOT_CONFIGURED
from test_viewer_dashboard_in_voila import (
    HEAD_CT,
    VIEW,
    _button,
    _clean,
    _opened,
    _pixels,
    _until_shows,
)
from test_viewer_pointer import TIMEOUT_MS

import medimg_lab
from medimg_lab.archive.testing import files_of, seed_all, seeded_orthanc
from medimg_lab.display import apply_window

pytestmark = pytest.mark.browser

SIZES = [(1366, 768), (1920, 1080)]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studies-browser-seeds")
    return seed_all(folder, ct_slices=12, rle_slices=10)


@pytest.fixture(scope="module")
def archive_site(seeds, tmp_path_factory):
    """Base URL of a ``make dashboard`` Voila whose archive is a seeded Orthanc."""
    storage = tmp_path_factory.mktemp("studies-browser-orthanc")
    with seeded_orthanc(storage, files_of(seeds)) as server:
        home = tmp_path_factory.mktemp("studies-voila-home")
        env = _isolated_env(home)
        env.update(server.environment(cache=home / "archive-cache"))
        port = _free_port()
        voila = start_dashboards("dashboards_archive", port, env)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            _stop(voila)


def _open(page, url: str, size=SIZES[0]):
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    _opened(page, HEAD_CT)
    return page.locator(".medimg-studies")


def _fill(panel, label: str, text: str) -> None:
    panel.locator(".widget-text", has_text=label).locator("input").fill(text)


def _search(page, panel, patient_id: str = "") -> list[str]:
    """Search with the page's form; the studies listed (their option texts)."""
    _fill(panel, "patient ID", patient_id)
    panel.locator(".widget-text", has_text="patient ID").locator("input").press("Tab")
    _button(page, "Search").click()
    status = panel.locator(".widget-html", has_text=re.compile(r"stud(y|ies) found"))
    status.wait_for()
    options = panel.locator("select").first.locator("option").all_inner_texts()
    return [t.replace("\xa0", " ") for t in options]  # ipywidgets' spaces


def test_the_panel_lists_the_seeded_studies(page, page_errors, archive_site, seeds):
    panel = _open(page, archive_site + "voila/render/viewer.ipynb")
    listed = _search(page, panel)
    assert len(listed) == len(seeds)
    for seed in seeds.values():
        name = f"Test Patient{seed.patient_id[-3:]}"
        row = [t for t in listed if seed.patient_id in t]
        assert len(row) == 1 and name in row[0], (seed.key, listed)
    _clean(page, page_errors)


@pytest.mark.parametrize("key", ["ct_series", "small_ct_rle"])
def test_opening_a_series_paints_it_in_the_viewer(
    page, page_errors, archive_site, seeds, artifacts, key
):
    seed = seeds[key]
    panel = _open(page, archive_site + "voila/render/viewer.ipynb")
    listed = _search(page, panel, seed.patient_id)
    assert len(listed) == 1 and seed.patient_id in listed[0]
    series = panel.locator("select").nth(1).locator("option")
    series.first.wait_for()
    assert "CT" in series.first.inner_text()
    _button(page, "Open series").click()
    truth = medimg_lab.load(seed.folder)
    number = int(seed.key == "small_ct_rle") + 9  # the seeds' series numbers
    _opened(page, describe(truth, f"CT series {number}: {key} series"))
    done = panel.locator(".widget-html", has_text=re.compile(r"^Opened CT series"))
    done.wait_for()
    bar = panel.locator(".widget-html", has_text=re.compile(r"of \d+ instances"))
    assert bar.inner_text().startswith(f"{seed.extra['slices']} of ")
    middle = truth.array.shape[0] // 2
    image = page.locator(VIEW)
    _until_shows(page, image, apply_window(truth.array[middle], *truth.window))
    page.screenshot(path=str(artifacts / f"studies_opened_{key}_1366x768.png"))
    _clean(page, page_errors)


@pytest.mark.parametrize("name", ["viewer", "segmentation"])
def test_the_unconfigured_dashboard_says_how_to_configure(
    page, page_errors, dashboard_site, name
):
    panel = _open(page, dashboard_site + f"voila/render/{name}.ipynb")
    assert panel.inner_text().strip() == NOT_CONFIGURED
    _clean(page, page_errors)


@pytest.mark.parametrize("size", SIZES, ids=["1366", "1920"])
@pytest.mark.parametrize("name", ["viewer", "segmentation"])
def test_screenshots_with_the_studies_panel(
    page, page_errors, archive_site, seeds, artifacts, name, size
):
    panel = _open(page, archive_site + f"voila/render/{name}.ipynb", size)
    listed = _search(page, panel)
    assert len(listed) == len(seeds)
    panel.scroll_into_view_if_needed()
    page.evaluate("() => document.fonts.ready")
    path = artifacts / f"studies_{name}_{size[0]}x{size[1]}.png"
    page.screenshot(path=str(path), full_page=True)
    assert _pixels(path.read_bytes()).shape[1] == size[0]
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= size[0], f"horizontal scrollbar at {size[0]} px: {scroll} px"
    _clean(page, page_errors)


def test_unconfigured_screenshot(page, page_errors, dashboard_site, artifacts):
    _open(page, dashboard_site + "voila/render/viewer.ipynb")
    path = artifacts / "studies_unconfigured_viewer_1366x768.png"
    page.screenshot(path=str(path), full_page=True)
    assert np.asarray(_pixels(path.read_bytes())).shape[1] == 1366
    _clean(page, page_errors)
