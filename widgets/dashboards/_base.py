"""Plumbing shared by the Voila dashboards: messages, opening files, downloads.

- :class:`Dashboard`: the message line and the guard of every panel
  (:class:`~medimg_lab.widgets._panel.Messages`: any exception of a callback
  becomes one plain sentence in the page; the kernel and the page keep
  running, no traceback ever reaches a clinician), and the exports' one way
  of offering a file (:meth:`Dashboard._offer`, :meth:`Dashboard._export`).
- :class:`ImageSource`: "upload a file or pick a sample", with the size and
  type checks done before anything is parsed; the upload's name is used in
  messages only, never as a path.
- :func:`download_link`: an ``<a download>`` whose payload travels in the
  page, so that nothing is written on the server.
- :func:`page` and :func:`section`: the layout every dashboard shares, made
  for a 1366 x 768 laptop screen as well as a 1920 x 1080 one: the image
  column stays on screen while the page scrolls (CSS ``position: sticky``),
  and the controls beside it use the width left, in sections that wrap into
  columns (two at 1366 px, three at 1920 px) instead of one long column.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable
from pathlib import Path

import ipywidgets as ipw
import pandas as pd

from medimg_lab import data
from medimg_lab.display import encode_png
from medimg_lab.errors import MedImgError
from medimg_lab.image import MedImage
from medimg_lab.io import load
from medimg_lab.io._source import sniff
from medimg_lab.io.dicom import zip_members

from .._panel import Messages, NotebookNote
from ..studies import OpenedSeries, StudiesPanel
from ..viewer import NO_SPACING

__all__ = [
    "MAX_UPLOAD_BYTES",
    "Dashboard",
    "ImageSource",
    "download_link",
    "page",
    "section",
]

#: The largest upload opened, in bytes (64 MiB).
MAX_UPLOAD_BYTES = 64 * 2**20
ACCEPT = ".dcm,.dicom,.ima,.nii,.nii.gz,.gz,.png,.jpg,.jpeg,.tif,.tiff,.zip"
# Header keywords that could identify a person, a place or a date; MedImage.meta
# holds none, this is a second line of defence.
IDENTIFYING = re.compile(
    r"Patient(?!Position|Orientation)|Accession|Institution|Physician|Operator|"
    r"Referring|StudyID|(?<!Model)Name$|Date|Time$|UID",
    re.IGNORECASE,
)


#: The dashboards' stylesheet, in the page once per dashboard (an ``ipw.HTML``).
#: Lumino widgets and output areas are ``overflow: hidden``, which makes each
#: a scroll container of its own and stops ``position: sticky``; the boxes of
#: the output that holds a dashboard page are set visible again (``:has``),
#: so that the page's scroller (Voila's ``#rendered_cells``, JupyterLab's
#: notebook) is the one the image column sticks to.
STYLE = """<style>
.medimg-page.medimg-page {
  display: flex; flex-flow: row nowrap; align-items: flex-start;
  gap: 0 16px; width: 100%; overflow: visible;
}
:is(.jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output):has(.medimg-page),
.jp-OutputArea-output .lm-Widget:has(.medimg-page) { overflow: visible !important; }
.medimg-page > .medimg-image.medimg-image {
  position: sticky; top: 0; z-index: 2; flex: 0 0 auto; overflow: visible;
  background: var(--jp-layout-color0, #fff);
}
.medimg-image > * { max-width: 100%; }
.medimg-page > .medimg-controls.medimg-controls {
  display: flex; flex-flow: row wrap; align-items: flex-start;
  align-content: flex-start; gap: 0 24px; flex: 1 1 0; min-width: 380px;
  overflow: visible;
}
.medimg-controls > .medimg-section.medimg-section {
  flex: 1 1 380px; min-width: 380px; max-width: 640px; overflow: visible;
}
.medimg-controls > .medimg-section.medimg-wide { flex-basis: 100%; max-width: none; }
.medimg-section .widget-html-content, .medimg-section .widget-label {
  white-space: normal; overflow-wrap: anywhere;
}
.medimg-section .medimg-table th {
  white-space: normal; overflow-wrap: normal; vertical-align: bottom; text-align: left;
}
.medimg-section .medimg-table td { white-space: nowrap; overflow-wrap: normal; }
/* a dropdown is never narrower than its longest option (a <select>'s
   intrinsic width), however wide its layout asked it to be */
.medimg-page .widget-dropdown, .medimg-page .widget-dropdown > select {
  min-width: max-content;
}
/* the Studies panel's lists: as wide as their section, their long lines cut
   there (a <select>'s intrinsic width is its longest option's) */
.medimg-studies.medimg-studies, .medimg-studies .widget-select,
.medimg-studies .widget-select > select { min-width: 0; max-width: 100%; }
.medimg-studies .widget-select > select { width: 100%; }
.medimg-upload.medimg-upload { font-size: 0 !important; width: auto; }
.medimg-upload.medimg-upload::after { font-size: var(--jp-widgets-font-size, 13px); }
</style>"""


def page(
    image: ipw.Widget, sections: list[ipw.Widget], *, width: int
) -> list[ipw.Widget]:
    """A dashboard's children: its stylesheet, then the image beside the controls.

    Parameters
    ----------
    image : ipywidgets.Widget
        The viewer (or a box holding it); it stays on screen as the page
        scrolls.
    sections : list of ipywidgets.Widget
        The controls, in the order they are used, each one made by
        :func:`section`; they wrap into as many columns as the width holds.
    width : int
        The image column's width in CSS px: the viewer's display box and
        its margins (its controls wrap inside it).
    """
    column = ipw.Box([image], layout={"width": f"{width}px"})
    column.add_class("medimg-image")
    controls = ipw.Box(sections)
    controls.add_class("medimg-controls")
    body = ipw.Box([column, controls])
    body.add_class("medimg-page")
    return [ipw.HTML(STYLE, layout={"display": "none"}), body]


def section(children: list[ipw.Widget], *, wide: bool = False) -> ipw.VBox:
    """A group of controls that stays together in one column of the page.

    ``wide`` takes the whole width of the controls (a table that needs it).
    """
    box = ipw.VBox(children)
    box.add_class("medimg-section")
    if wide:
        box.add_class("medimg-wide")
    return box


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def download_link(payload: bytes, name: str, mime: str, label: str) -> str:
    """An ``<a download>`` with the payload as a data: URL, and its size."""
    url = f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
    size = f"{max(1, round(len(payload) / 1024))} KB"
    return (
        f'<a download="{name}" href="{url}" title="save {name}">'
        f"⬇ {html.escape(label)} ({size})</a>"
    )


def heading(text: str) -> ipw.HTML:
    return ipw.HTML(f"<b>{html.escape(text)}</b>", layout={"margin": "8px 0 0 0"})


def cell(value) -> str:
    """A table cell: 4 significant digits, empty for a missing value."""
    if (
        value is None
        or value is pd.NA
        or (isinstance(value, float) and math.isnan(value))
    ):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return html.escape(str(value))


def html_table(table: pd.DataFrame, empty: str = "No measurements yet.") -> str:
    """A compact HTML table of ``table`` (its column names carry the units)."""
    if table.empty:
        return f"<i>{html.escape(empty)}</i>"
    head = "".join(
        f"<th style='padding:0 4px'>{html.escape(str(c))}</th>" for c in table.columns
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td style='padding:0 4px'>{cell(v)}</td>" for v in row)
        + "</tr>"
        for row in table.itertuples(index=False)
    )
    return (
        f"<table class='medimg-table' style='font-size:12px;white-space:nowrap'>"
        f"<tr>{head}</tr>"
        f"{body}</table>"
    )


def describe(image: MedImage, name: str, reset: str = "") -> str:
    """What was opened, its unit with what it is, and what opening reset.

    "Open: head_ct (CT, 512 × 512, values in HU (Hounsfield units))." with
    ``reset`` ("measurements cleared") after a semicolon, and a sentence on
    an unknown pixel spacing (:data:`NO_SPACING`).
    """
    shape = " × ".join(str(n) for n in image.array.shape)
    text = f"Open: {name} ({image.modality}, {shape}, values in {image.unit_note})"
    text += f"; {reset}." if reset else "."
    if image.meta.get("spacing_known") is False:
        text += f" {NO_SPACING}"
    return text


class Dashboard(Messages, NotebookNote, ipw.VBox):
    """A dashboard's message line, error guard, opening and exports (a base class).

    Subclasses put ``self._message`` (an ``ipw.HTML``) in their layout and
    open files through ``self._source``, an :class:`ImageSource`.
    """

    def __init__(self, **kwargs):
        self._message_text = ""
        self._message = ipw.HTML(layout={"width": "400px"})
        super().__init__(**kwargs)

    def load_bytes(self, payload: bytes, name: str = "upload") -> MedImage:
        """Open an upload: DICOM, NIfTI, PNG, JPEG, TIFF or a zip of a series.

        Parameters
        ----------
        payload : bytes
            The file's content, at most :data:`MAX_UPLOAD_BYTES`.
        name : str
            The file's name, used in messages only.

        Returns
        -------
        MedImage
            The image now shown.

        Raises
        ------
        MedImgError or ValueError
            The file cannot be opened; the sentence also shows in the page
            and the previous image stays.
        """
        return self._source.load_bytes(payload, name)

    def load_sample(self, name: str) -> MedImage:
        """Open a bundled sample by name (see :func:`medimg_lab.data.samples`)."""
        return self._source.load_sample(name)

    @property
    def studies(self) -> StudiesPanel:
        """The Studies panel: search the configured archive, open a series."""
        return self._studies

    @property
    def archive_series(self) -> OpenedSeries | None:
        """The archive's series shown now, or None (an upload or a sample is)."""
        opened = self._studies.opened if getattr(self, "_studies", None) else None
        if opened is not None and self._source.image is opened.image:
            return opened
        return None

    def _studies_section(self, send: Callable[[], list] | None = None) -> ipw.VBox:
        """The page's "Studies" section: a :class:`StudiesPanel` opening here."""
        self._studies = StudiesPanel(self._on_series_open, send=send)
        return section([heading("Studies (archive)"), self._studies])

    def _on_series_open(self, opened: OpenedSeries) -> None:
        """A series came from the archive: open it, its cached files behind it."""
        self._source.show(opened.image, opened.name, files=opened.paths)

    def _open_first(self, image: MedImage | None, sample: str) -> None:
        """Open ``image``, or else the sample ``sample``, shown as chosen."""
        if image is None:
            self._source.load_sample(sample)
        else:
            self._source.show(image)

    # -------------------------------------------------------------- exports
    @staticmethod
    def _offer(link: ipw.HTML, payload: bytes, name: str, mime: str) -> None:
        """Put a download of ``payload`` as ``name`` in ``link``."""
        link.value = download_link(payload, name, mime, name)

    def _offer_png(self, shown, link: ipw.HTML, name: str, what: str) -> bytes:
        """A PNG of the display image ``shown``, offered in ``link``.

        Raises (and says in the page) when there is nothing shown yet:
        ``what`` says what to open.
        """
        if shown is None:
            self._fail(ValueError(f"There is no view to export yet; {what}."))
        payload = encode_png(shown)
        self._offer(link, payload, name, "image/png")
        return payload

    def _offer_csv(self, table: pd.DataFrame, link: ipw.HTML, name: str) -> str:
        """``table`` as CSV (units in its header), offered in ``link``."""
        text = table.to_csv(index=False)
        self._offer(link, text.encode("utf-8"), name, "text/csv;charset=utf-8")
        return text

    def _export_button(
        self, text: str, tip: str, action: Callable[[], object]
    ) -> ipw.Button:
        """A button that runs the export ``action`` (see :meth:`_export`)."""
        button = ipw.Button(description=text, tooltip=tip, layout={"width": "auto"})
        button.on_click(lambda _: self._export(action, text))
        return button

    def _export(self, action: Callable[[], object], what: str) -> None:
        """An export button's callback: run ``action``, then say the file is ready.

        Unless the export said something of its own.
        """
        with self._guard(f"export the {what}"):
            self._say("")
            action()
            if not self.message:
                self._say(f"The {what} is ready: click the link to save it.", ok=True)


class ImageSource(ipw.VBox):
    """Upload a file or pick a sample; hands the opened image to ``on_open``.

    Parameters
    ----------
    owner : Dashboard
        Shows the problems (and the guard of the callbacks).
    on_open : callable
        ``on_open(image, name)`` once an image is opened.
    description : str
        The upload button's text.
    sample : str, optional
        The sample shown as chosen in the dropdown (none by default).
    grey_only : bool
        Offer only grey samples, and refuse a colour upload.

    Notes
    -----
    :meth:`load_bytes` checks the size (at most :data:`MAX_UPLOAD_BYTES`, not
    empty) and the type (by content, never by name) before parsing; in a
    dashboard served by ``make dashboard`` the page refuses a larger file
    before sending it (the button's class ``medimg-max-bytes-<n>``, read by
    the offline Voila template). The
    upload's name is shown in messages and beside the button
    (:attr:`file_name`, HTML-escaped), never used as a path; the button says
    its description alone, without FileUpload's count of files.
    :meth:`dicom_files` gives the DICOM files behind the image (an upload, a
    zip's members or a sample file), for a de-identified export.
    """

    def __init__(
        self,
        owner: Dashboard,
        on_open: Callable[[MedImage, str], None],
        *,
        description: str = "Upload file",
        sample: str | None = None,
        grey_only: bool = False,
    ):
        self._owner, self._on_open = owner, on_open
        self._grey_only = grey_only
        self._quiet = False
        self._payload: bytes | None = None
        self._image: MedImage | None = None
        self._files: tuple[Path, ...] = ()
        self.name = self._file_name_text = ""
        self._upload = ipw.FileUpload(
            accept=ACCEPT,
            multiple=False,
            description=description,
            tooltip=(
                "DICOM, NIfTI, PNG, JPEG, TIFF, or a .zip of one DICOM series, "
                f"up to {MAX_UPLOAD_BYTES // 2**20} MiB (DICOM files without an "
                "extension: choose 'All files' in the dialog)"
            ),
            layout={"min_width": "110px"},
        )
        # The button says its description only: FileUpload adds the count of
        # files it holds, "(0)" once the upload is read (its value is emptied
        # so that the same file can be chosen again). The file's name shows
        # beside it instead, escaped: a name is whatever the user's disk holds.
        slug = re.sub(r"[^a-z0-9]+", "-", description.lower()).strip("-")
        text = "".join(
            c if c.isalnum() or c == " " else f"\\{ord(c):x} " for c in description
        )
        self._upload.add_class("medimg-upload")
        self._upload.add_class(f"medimg-upload-{slug}")
        # The page refuses a larger file before sending a byte of it (the
        # offline Voila template reads the limit from this class).
        self._upload.add_class(f"medimg-max-bytes-{MAX_UPLOAD_BYTES}")
        self._upload_style = ipw.HTML(
            f'<style>.medimg-upload-{slug}::after {{ content: "{text}"; }}</style>',
            layout={"display": "none"},
        )
        self._file_name = ipw.HTML(layout={"margin": "0 8px", "max_width": "220px"})
        self._upload.observe(self._on_upload_change, "value")
        samples = [
            (f"{s.name} ({s.modality})", s.name)
            for s in data.samples()
            if not (grey_only and s.modality in ("US", "OP"))
        ]
        self._sample = ipw.Dropdown(
            options=samples,
            value=None,
            description="or sample",
            tooltip="open a bundled sample study",
            style={"description_width": "70px"},
            layout={"width": "280px"},
        )
        self._sample.observe(self._on_sample_change, "value")
        row = ipw.HBox(
            [self._upload, self._file_name, self._sample],
            layout={"flex_flow": "row wrap", "align_items": "center"},
        )
        super().__init__([self._upload_style, row])
        self.set_sample(sample)

    def load_bytes(self, payload: bytes, name: str = "upload") -> MedImage:
        """Open an upload: DICOM, NIfTI, PNG, JPEG, TIFF or a zip of a series.

        Raises
        ------
        MedImgError or ValueError
            The file is too large, empty, of no known type or cannot be
            opened; the sentence also shows in the page and nothing changes.
        """
        size, fail = len(payload), self._owner._fail
        if size > MAX_UPLOAD_BYTES:
            fail(
                ValueError(
                    f"{name} is {mib(size)}; the limit is "
                    f"{MAX_UPLOAD_BYTES // 2**20} MiB. Open a smaller file, or a "
                    "zip of fewer slices."
                )
            )
        if size == 0:
            fail(ValueError(f"{name} is empty. Choose the file again."))
        payload = bytes(payload)
        try:
            image = load(payload)
        except MedImgError as exc:
            fail(exc, f"{name}: {exc.problem} {exc.fix}")
        self._check(image, name)
        self._payload, self._image, self._files = payload, image, ()
        self.set_sample(None)
        self._opened(image, name)
        self.file_name = name
        return image

    def load_sample(self, name: str) -> MedImage:
        """Open a bundled sample by name (see :func:`medimg_lab.data.samples`)."""
        names = [value for _, value in self._sample.options]
        if name not in names:
            self._owner._fail(
                ValueError(f"sample must be one of {', '.join(names)}; got {name!r}")
            )
        self.show(data.sample(name), name)
        self.set_sample(name)
        return self._image

    def show(self, image: MedImage, name: str = "image", *, files=()) -> None:
        """Open an image made in Python, or retrieved from an archive.

        ``files``: the DICOM files behind it (an archive's cached instances),
        for :meth:`dicom_files`; none by default (then its ``source``, if any).
        """
        self._check(image, name)
        self._payload, self._image = None, image
        self._files = tuple(Path(f) for f in files)
        self.set_sample(None)
        self._opened(image, name)

    @property
    def image(self) -> MedImage | None:
        """The image opened last."""
        return self._image

    @property
    def file_name(self) -> str:
        """The name of the upload shown beside the button ("" after a sample)."""
        return self._file_name_text

    @file_name.setter
    def file_name(self, name: str) -> None:
        self._file_name_text = str(name)
        text = html.escape(self._file_name_text)
        self._file_name.value = f'<span title="{text}">{text}</span>' if text else ""

    def set_sample(self, name: str | None) -> None:
        """Show ``name`` as chosen in the dropdown, without opening it."""
        self._quiet = True
        try:
            self._sample.value = name
        finally:
            self._quiet = False

    def dicom_files(self) -> list[tuple[str, bytes]]:
        """``(name, bytes)`` of the DICOM files behind the image opened last.

        Empty when the image did not come from DICOM (NIfTI, PNG, a volume
        built in Python). Names are ``image_001.dcm`` ..., never the upload's.
        """
        if self._files:
            return [
                (f"image_{i:03d}.dcm", p.read_bytes())
                for i, p in enumerate(self._files, 1)
            ]
        payload = self._payload
        if payload is None and self._image is not None and self._image.source:
            source = Path(self._image.source)
            if source.is_file() and sniff(source.read_bytes()[:132]) == "dicom":
                payload = source.read_bytes()
        if payload is None:
            return []
        kind = sniff(payload[:132])
        if kind == "dicom":
            files = [payload]
        elif kind == "zip":
            members = zip_members(payload, self.name, MAX_UPLOAD_BYTES * 4)
            files = [f for _, f in members if sniff(f[:132]) == "dicom"]
        else:
            return []
        return [(f"image_{i:03d}.dcm", f) for i, f in enumerate(files, 1)]

    # ------------------------------------------------------------- helpers
    def _check(self, image: MedImage, name: str) -> None:
        if not isinstance(image, MedImage):
            self._owner._fail(
                TypeError(f"image must be a MedImage; got {type(image).__name__}")
            )
        if self._grey_only and image.is_color:
            self._owner._fail(
                ValueError(
                    f"{name} is a colour image; this dashboard takes grey images "
                    "(CT, MR, X-ray). Open a grey image."
                )
            )

    def _opened(self, image: MedImage, name: str) -> None:
        self.name = name
        self.file_name = ""  # an upload sets its name once it is open
        self._on_open(image, name)

    def _on_upload_change(self, change):
        files = change["new"]
        if not files:
            return
        with self._owner._guard("open the upload"):
            upload = files[0]
            self._upload.value = ()  # so that the same file can be chosen again
            self.load_bytes(bytes(upload["content"]), str(upload["name"]))

    def _on_sample_change(self, change):
        if self._quiet or change["new"] is None:
            return
        with self._owner._guard("open the sample"):
            self.load_sample(change["new"])
