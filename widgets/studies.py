"""``StudiesPanel``: search the configured archive, open a series, send results back.

The panel computes nothing: every search, retrieval and store goes through
:mod:`medimg_lab.archive` (QIDO-RS/WADO-RS/STOW-RS, or DIMSE), which also
keeps the cache and turns every failure into a sentence. The panel lays out:

- a search form: patient ID and name, accession number, modality, a study
  date range and a description (a name or description without wildcards
  matches anywhere in the text, ``*name*``);
- the studies found, with the patient's name and ID (this is the
  clinician's own archive), and the series of the study chosen;
- "Open series": the retrieval runs in a thread of its own, with a progress
  bar of instances and bytes and a "Cancel" button (a cancelled retrieval
  keeps its complete instances in the cache, so opening again resumes);
- "Send results" when the dashboard gives something to send (a SEG and an
  SR, stored by STOW-RS or C-STORE).

The archive comes from the environment (``MEDIMG_ARCHIVE_URL`` and its
credentials, :func:`medimg_lab.archive.configured_archive`). Without one the
panel says in one sentence how to configure it and offers nothing else; the
dashboard keeps working with uploads and samples. Every failure (a server
down, refused credentials, a timeout) is one sentence in the panel's line.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as ipw
import traitlets

from medimg_lab import archive as _archive
from medimg_lab.errors import MedImgError
from medimg_lab.image import MedImage
from medimg_lab.io._source import size_text

from ._panel import GREY, Messages, NotebookNote, line_html

__all__ = ["NOT_CONFIGURED", "OpenedSeries", "StudiesPanel"]

#: What the panel says when no archive is configured (one sentence).
NOT_CONFIGURED = (
    "No archive is configured; to search one, "
    + _archive.HOW_TO_CONFIGURE[0].lower()
    + _archive.HOW_TO_CONFIGURE[1:]
)


@dataclass(frozen=True)
class OpenedSeries:
    """A series opened from the archive.

    Parameters
    ----------
    image : MedImage
        The series, as :func:`medimg_lab.load` makes it.
    name : str
        What the page calls it ("CT series 3: head").
    study_uid, series_uid : str
        Its Study and Series Instance UIDs.
    paths : tuple of Path
        The cached DICOM files behind it (the sources of a SEG).
    instances_cached : int
        Instances that were in the cache already.
    bytes_received : int
        Bytes transferred by this opening (bytes).
    """

    image: MedImage
    name: str
    study_uid: str
    series_uid: str
    paths: tuple[Path, ...]
    instances_cached: int
    bytes_received: int


def _contains(text: str) -> str | None:
    """``*text*`` unless it holds a wildcard already; None when empty."""
    text = text.strip()
    if not text:
        return None
    return text if any(c in text for c in "*?") else f"*{text}*"


class StudiesPanel(Messages, NotebookNote, ipw.VBox):
    """Search the archive, list studies and series, open one, send results.

    Parameters
    ----------
    on_open : callable
        ``on_open(opened)`` with an :class:`OpenedSeries` once a series is
        retrieved and loaded (in the retrieval's thread when opened by the
        button).
    archive : DicomWebArchive or DimseArchive, optional
        The archive; default the one configured by the environment
        (:func:`medimg_lab.archive.configured_archive`), or none.
    send : callable, optional
        ``send() -> list`` of pydicom Datasets to store (a SEG and an SR);
        with it the panel offers "Send results".
    limit : int
        Most studies listed by one search.

    Notes
    -----
    Setters, for notebooks and tests: :meth:`set_filters`, :meth:`search`,
    :meth:`choose_study`, :meth:`open_series` (``wait=False`` as the button
    does), :meth:`cancel`, :meth:`wait`, :meth:`send_results`. Getters:
    :attr:`configured`, :attr:`studies`, :attr:`series`, :attr:`opened`,
    :attr:`message`, and the traits ``instances_done``, ``instances_total``
    and ``bytes_received`` of the retrieval under way.
    """

    instances_done = traitlets.Int(0)
    instances_total = traitlets.Int(0)
    bytes_received = traitlets.Int(0)
    busy = traitlets.Bool(False)

    def __init__(
        self,
        on_open: Callable[[OpenedSeries], None] | None = None,
        *,
        archive=None,
        send: Callable[[], list] | None = None,
        limit: int = 100,
        **kwargs,
    ):
        self._open_callback, self._results, self._limit = on_open, send, int(limit)
        self._message_text = ""
        self._message = ipw.HTML(layout={"max_width": "560px"})
        self._studies: list = []
        self._series: list = []
        self._opened: OpenedSeries | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._quiet = False
        super().__init__(**kwargs)
        self.add_class("medimg-studies")
        self.archive = archive
        problem = None
        if archive is None:
            try:
                self.archive = _archive.configured_archive()
            except (MedImgError, ValueError, TypeError) as exc:
                problem = exc
        self._build()
        if problem is not None:
            self._say_failure("open the configured archive", problem)
            self.children = [self._message]
        elif self.archive is None:
            self._tell(NOT_CONFIGURED)
            self.children = [self._message]
        else:
            where = html.escape(getattr(self.archive, "name", str(self.archive)))
            self._where.value = line_html(f"Archive: {where}", GREY)

    # ------------------------------------------------------------------ API
    @property
    def configured(self) -> bool:
        """True when an archive is there to search."""
        return self.archive is not None

    @property
    def studies(self) -> list:
        """The studies of the last search (:class:`medimg_lab.archive.Study`)."""
        return list(self._studies)

    @property
    def series(self) -> list:
        """The series of the chosen study (:class:`medimg_lab.archive.Series`)."""
        return list(self._series)

    @property
    def opened(self) -> OpenedSeries | None:
        """The series opened last, or None."""
        return self._opened

    def set_filters(
        self,
        *,
        patient_id: str = "",
        patient_name: str = "",
        accession_number: str = "",
        modality: str = "",
        date_from=None,
        date_to=None,
        description: str = "",
    ) -> None:
        """Fill the search form (each value as the user would type it).

        Parameters
        ----------
        patient_id, patient_name, accession_number, modality, description : str
            Filters; empty for none. Name and description match anywhere
            unless they hold ``*`` or ``?``.
        date_from, date_to : datetime.date, optional
            The study date range, inclusive.
        """
        self._need_archive()
        values = {
            "patient_id": patient_id,
            "patient_name": patient_name,
            "accession_number": accession_number,
            "modality": modality,
            "description": description,
        }
        for key, value in values.items():
            self._fields[key].value = str(value)
        self._date_from.value, self._date_to.value = date_from, date_to

    def search(self) -> list:
        """Search the studies matching the form; list them (and choose the first).

        Returns
        -------
        list of medimg_lab.archive.Study

        Raises
        ------
        MedImgError or ValueError
            The archive failed or a filter is invalid; the sentence shows
            in the panel.
        """
        self._need_archive()
        f = {k: w.value.strip() for k, w in self._fields.items()}
        dates = (self._date_from.value, self._date_to.value)
        name = _contains(f["patient_name"])
        try:
            found = self.archive.search_studies(
                patient_id=f["patient_id"] or None,
                accession_number=f["accession_number"] or None,
                modality=f["modality"].upper() or None,
                date=dates if any(d is not None for d in dates) else None,
                description=_contains(f["description"]),
                filters={"PatientName": name} if name else None,
                fuzzy=bool(name),
                limit=self._limit,
            )
        except (MedImgError, ValueError, TypeError) as exc:
            self._fail_with(exc, "search the archive")
        self._studies = found
        self._quiet = True
        try:
            self._study_list.options = [
                (self._study_text(s), s.study_uid) for s in found
            ]
            self._study_list.value = None
        finally:
            self._quiet = False
        self._series, self._series_list.options = [], []
        self._open_button.disabled = True
        more = (
            " (the first ones: narrow the search)" if len(found) >= self._limit else ""
        )
        self._tell(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'} found{more}.")
        if found:
            self.choose_study(found[0].study_uid)
        return self.studies

    def choose_study(self, study_uid: str) -> list:
        """List the series of a study of the last search.

        Parameters
        ----------
        study_uid : str
            A Study Instance UID of the studies listed.

        Returns
        -------
        list of medimg_lab.archive.Series
        """
        self._need_archive()
        uids = [s.study_uid for s in self._studies]
        if study_uid not in uids:
            self._fail(
                ValueError(
                    f"study_uid must be one of the {len(uids)} studies listed; got "
                    f"{study_uid!r}. Search first."
                )
            )
        try:
            found = self.archive.search_series(study_uid, limit=None)
        except (MedImgError, ValueError, TypeError) as exc:
            self._fail_with(exc, "list the study's series")
        found = sorted(found, key=lambda s: (s.number is None, s.number or 0))
        self._series = found
        self._quiet = True
        try:
            self._study_list.value = study_uid
            self._series_list.options = [
                (self._series_text(s), s.series_uid) for s in found
            ]
            images = [s for s in found if s.modality not in ("SEG", "SR")]
            first = images or found
            self._series_list.value = first[0].series_uid if first else None
        finally:
            self._quiet = False
        self._open_button.disabled = not found
        return self.series

    def open_series(self, series_uid: str | None = None, *, wait: bool = True):
        """Retrieve a series of the chosen study and open it.

        Parameters
        ----------
        series_uid : str, optional
            A series listed; default the one chosen in the list.
        wait : bool
            Return once it is open (True), or at once, the retrieval going
            on in a thread while the progress bar moves (as the button).

        Returns
        -------
        OpenedSeries or None
            The series opened (None when not waiting, or on a failure).
        """
        self._need_archive()
        if self.busy:
            self._fail(
                ValueError(
                    "A series is being retrieved; wait for it or cancel it first."
                )
            )
        uid = series_uid if series_uid is not None else self._series_list.value
        chosen = next((s for s in self._series if s.series_uid == uid), None)
        if chosen is None:
            self._fail(
                ValueError(
                    f"series_uid must be one of the {len(self._series)} series listed "
                    f"for the chosen study; got {uid!r}. Choose a study first."
                )
            )
        self._cancel.clear()
        self.busy = True
        self._progress(_archive.Progress(0, chosen.instance_count or 0, 0, 0))
        self._say("")
        if not wait:
            self._thread = threading.Thread(
                target=self._retrieve, args=(chosen,), daemon=True
            )
            self._thread.start()
            return None
        return self._retrieve(chosen)

    def cancel(self) -> None:
        """Cancel the retrieval under way (its complete instances stay cached)."""
        self._cancel.set()

    def wait(self, timeout_s: float = 120) -> OpenedSeries | None:
        """Wait for a retrieval started with ``wait=False`` (s); the series opened.

        Parameters
        ----------
        timeout_s : float
            Longest wait, in seconds.

        Returns
        -------
        OpenedSeries or None
            The series opened last (:attr:`opened`), or None.
        """
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self._opened

    def send_results(self) -> list[str]:
        """Store the dashboard's results on the archive; their SOP Instance UIDs.

        Lists the chosen study's series again, so that the results show
        beside its images.
        """
        self._need_archive()
        if self._results is None:
            self._fail(ValueError("This page has no results to send."))
        try:
            datasets = self._results()
            stored = self.archive.store(datasets)
        except (MedImgError, ValueError, TypeError) as exc:
            self._fail_with(exc, "send the results")
        study = self._study_list.value
        if study is not None:
            self.choose_study(study)
        kinds = ", ".join(str(getattr(d, "Modality", "?")) for d in datasets)
        self._say(
            f"Stored {len(stored)} object(s) ({kinds}) on the archive, in the "
            "study of the images.",
            ok=True,
        )
        return stored

    # ---------------------------------------------------------------- build
    def _build(self) -> None:
        text = {"layout": {"width": "250px"}, "style": {"description_width": "90px"}}
        self._fields = {
            "patient_id": ipw.Text(description="patient ID", **text),
            "patient_name": ipw.Text(description="name", **text),
            "accession_number": ipw.Text(description="accession", **text),
            "modality": ipw.Text(description="modality", placeholder="CT, MR", **text),
            "description": ipw.Text(description="description", **text),
        }
        dates = {"layout": {"width": "250px"}, "style": {"description_width": "90px"}}
        self._date_from = ipw.DatePicker(description="date from", **dates)
        self._date_to = ipw.DatePicker(description="date to", **dates)
        self._search_button = ipw.Button(
            description="Search",
            tooltip="search the archive's studies with the filters given",
            layout={"width": "100px"},
        )
        self._search_button.on_click(self._on_search_click)
        self._where = ipw.HTML()
        select = {"layout": {"width": "calc(100% - 4px)"}, "rows": 5}  # its margins
        self._study_list = ipw.Select(options=[], description="", **select)
        self._study_list.observe(self._on_study_change, "value")
        self._series_list = ipw.Select(options=[], description="", **select)
        self._open_button = ipw.Button(
            description="Open series",
            tooltip="retrieve the chosen series and open it in the viewer",
            disabled=True,
            layout={"width": "120px"},
        )
        self._open_button.on_click(self._on_open_click)
        self._cancel_button = ipw.Button(
            description="Cancel",
            tooltip="stop the retrieval; what arrived stays cached for next time",
            disabled=True,
            layout={"width": "80px"},
        )
        self._cancel_button.on_click(self._on_cancel_click)
        self._bar = ipw.IntProgress(value=0, min=0, max=1, layout={"width": "160px"})
        self._bar_text = ipw.HTML()
        self._send_button = ipw.Button(
            description="Send results",
            tooltip="store the segmentation (SEG) and its measurements (SR) "
            "on the archive, in the study of the images",
            layout={"width": "120px", "display": "" if self._results else "none"},
        )
        self._send_button.on_click(self._on_send_click)
        wrap = {"flex_flow": "row wrap", "align_items": "center"}
        form = ipw.Box(
            [*self._fields.values(), self._date_from, self._date_to],
            layout={"flex_flow": "row wrap"},
        )
        self.children = [
            self._where,
            form,
            ipw.HBox([self._search_button], layout=wrap),
            ipw.HTML("Studies (patient, ID, date, description, modalities):"),
            self._study_list,
            ipw.HTML("Series:"),
            self._series_list,
            ipw.HBox(
                [
                    self._open_button,
                    self._cancel_button,
                    self._bar,
                    self._bar_text,
                    self._send_button,
                ],
                layout=wrap,
            ),
            self._message,
        ]

    @staticmethod
    def _study_text(s) -> str:
        date = f"{s.date[:4]}-{s.date[4:6]}-{s.date[6:8]}" if len(s.date) == 8 else ""
        name = s.patient_name.replace("^", " ").strip() or "(no name)"
        parts = [name, s.patient_id or "(no ID)", date, s.description]
        parts.append("/".join(s.modalities))
        if s.accession_number:
            parts.append(f"acc. {s.accession_number}")
        return " · ".join(p for p in parts if p)

    @staticmethod
    def _series_text(s) -> str:
        number = f"#{s.number}" if s.number is not None else ""
        count = f"{s.instance_count} instances" if s.instance_count is not None else ""
        parts = [s.modality, number, s.description, count]
        return " · ".join(p for p in parts if p)

    # ------------------------------------------------------------- helpers
    def _need_archive(self) -> None:
        if self.archive is None:
            self._fail(ValueError(NOT_CONFIGURED))

    def _fail_with(self, exc: Exception, action: str):
        """Show an archive failure as a sentence, then raise it."""
        self._say_failure(action, exc)
        exc.shown_in_page = True
        raise exc

    def _progress(self, p) -> None:
        """A retrieval's progress (in the receiving thread): bar and counts."""
        self.instances_total, self.instances_done = p.instances_total, p.instances_done
        self.bytes_received = p.bytes_received
        self._bar.max = max(p.instances_total, 1)
        self._bar.value = p.instances_done
        cached = f", {p.instances_cached} from the cache" if p.instances_cached else ""
        self._bar_text.value = html.escape(
            f"{p.instances_done} of {p.instances_total} instances, "
            f"{size_text(p.bytes_received)} received{cached}"
        )

    def _retrieve(self, chosen) -> OpenedSeries | None:
        """Retrieve ``chosen`` into the cache, load it and hand it on (any thread)."""
        try:
            got = self.archive.retrieve_series(
                chosen.series_uid,
                study_uid=chosen.study_uid,
                progress=self._progress,
                cancel=self._cancel,
            )
            # every instance is cached now: this opening transfers nothing
            image = self.archive.load_series(chosen.series_uid, study_uid=got.study_uid)
            name = " ".join(
                p for p in (chosen.modality, "series", str(chosen.number or "")) if p
            )
            if chosen.description:
                name += f": {chosen.description}"
            opened = OpenedSeries(
                image,
                name,
                got.study_uid,
                got.series_uid,
                got.paths,
                got.instances_cached,
                got.bytes_received,
            )
            if self._open_callback is not None:
                self._open_callback(opened)
            self._opened = opened
            self._bar.bar_style = "success"
            self._say(
                f"Opened {name}: {len(got.paths)} instances, "
                f"{size_text(got.bytes_received)} received, "
                f"{got.instances_cached} from the cache.",
                ok=True,
            )
            return opened
        except _archive.RetrievalCancelled:
            self._bar.bar_style = "warning"
            self._tell(
                f"Retrieval cancelled after {self.instances_done} of "
                f"{self.instances_total} instances; they stay cached, so opening "
                "the series again resumes."
            )
        except Exception as exc:  # a thread's failure must show in the page
            self._bar.bar_style = "danger"
            if not getattr(exc, "shown_in_page", False):
                self._say_failure("open the series", exc)
        finally:
            self.busy = False
        return None

    # ------------------------------------------------------------ callbacks
    @traitlets.observe("busy")
    def _on_busy_change(self, change) -> None:
        busy = change["new"]
        self._open_button.disabled = busy or not self._series
        self._search_button.disabled = busy
        self._cancel_button.disabled = not busy
        if busy:
            self._bar.bar_style = "info"

    def _on_search_click(self, _) -> None:
        with self._guard("search the archive"):
            self.search()

    def _on_study_change(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        with self._guard("list the study's series"):
            self.choose_study(change["new"])

    def _on_open_click(self, _) -> None:
        with self._guard("open the series"):
            self.open_series(wait=False)

    def _on_cancel_click(self, _) -> None:
        with self._guard("cancel the retrieval"):
            self.cancel()

    def _on_send_click(self, _) -> None:
        with self._guard("send the results"):
            self.send_results()
