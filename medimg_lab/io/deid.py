"""De-identifying DICOM export: PS3.15 Annex E, Basic Confidentiality Profile.

Text burned into the pixels stays there; ``DeidReport.burned_in_annotation``
tells the caller to warn the user.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import hmac
import io
import os
import secrets
import uuid
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary  # re-exported from pydicom._uid_dict

from ..errors import NotAnImageError, NotFoundError
from ._atomic import atomic_write

__all__ = [
    "DeidReport",
    "deidentified_bytes",
    "deidentify",
    "export_deidentified",
    "is_uid_preserved",
]

METHOD = "DICOM PS3.15 Basic Application Level Confidentiality Profile"
BURNED_IN_MODALITIES = frozenset({"US", "SC", "OT", "XC", "ES"})
_CODE_BASIC = ("113100", "Basic Application Confidentiality Profile")
_CODE_DATES = (
    "113107",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)

# PS3.15 Table E.1-1 actions: X remove, Z zero-length, D dummy value.
# UIDs (action U) are not listed: every non-standard UI value is remapped.
# Where the profile offers a choice (X/Z/D, X/D, Z/D) or we were unsure of
# the exact action, we remove (X): e.g. StationName, DeviceSerialNumber,
# ProtocolName, DetectorID, AcquisitionDeviceProcessingDescription,
# IconImageSequence, and PersonName/VerifyingObserverName (D in the profile).
_X = """
PatientBirthTime PatientAge PatientSize PatientWeight PatientAddress
PatientTelephoneNumbers PatientMotherBirthName OtherPatientIDs OtherPatientIDsSequence
OtherPatientNames PatientBirthName MilitaryRank BranchOfService MedicalRecordLocator
EthnicGroup Occupation AdditionalPatientHistory PatientComments
PatientReligiousPreference PregnancyStatus SmokingStatus MedicalAlerts Allergies
CountryOfResidence RegionOfResidence PatientState PatientInstitutionResidence
CurrentPatientLocation PatientPrimaryLanguageCodeSequence
PatientInsurancePlanCodeSequence IssuerOfPatientID AdmissionID IssuerOfAdmissionID
AdmittingDiagnosesDescription AdmittingDate AdmittingTime VisitComments ServiceEpisodeID
ServiceEpisodeDescription PatientTransportArrangements ResponsibleOrganization
InstitutionName InstitutionAddress InstitutionalDepartmentName InstitutionCodeSequence
StationName StationAETitle DeviceSerialNumber DeviceDescription GantryID DetectorID
PlateID CassetteID AcquisitionDeviceProcessingDescription StudyDescription
SeriesDescription ProtocolName ImageComments FrameComments AcquisitionComments
StudyComments DerivationDescription IdentifyingComments RequestAttributesSequence
ReferencedPatientSequence ReferencedStudySequence
ReferencedPerformedProcedureStepSequence PerformedProcedureStepID
PerformedProcedureStepDescription PerformedProcedureStepStartDate
PerformedProcedureStepStartTime PerformedProcedureStepEndDate
PerformedProcedureStepEndTime PerformedLocation PerformedStationName
PerformedStationAETitle RequestedProcedureDescription RequestedProcedureID
RequestedProcedureComments ReasonForTheRequestedProcedure ReasonForStudy
RequestingService ImagingServiceRequestComments ScheduledProcedureStepDescription
ScheduledProcedureStepID ScheduledStationName ScheduledStationAETitle
ReferringPhysicianAddress ReferringPhysicianTelephoneNumbers
ReferringPhysicianIdentificationSequence OperatorIdentificationSequence
PerformingPhysicianIdentificationSequence PhysiciansOfRecordIdentificationSequence
PhysiciansReadingStudyIdentificationSequence PersonName TextString TextValue
ContentSequence IconImageSequence StorageMediaFileSetID OriginalAttributesSequence
EncryptedAttributesSequence DigitalSignaturesSequence MACParametersSequence
DataSetTrailingPadding SourceApplicationEntityTitle SendingApplicationEntityTitle
ReceivingApplicationEntityTitle PrivateInformation
"""
_Z = """
PatientName PatientID PatientBirthDate PatientSex ReferringPhysicianName
ContentCreatorName AccessionNumber StudyID ContrastBolusAgent
"""
_D = {"VerifyingOrganization": "ANONYMOUS"}  # every PN not in _Z is removed
_ACTIONS = dict.fromkeys(_X.split(), "X") | dict.fromkeys(_Z.split(), "Z")
_ACTIONS |= dict.fromkeys(_D, "D")
# UI attributes naming a type, not an instance: kept even when not standard.
_TYPE_UIDS = ("ClassUID", "TransferSyntaxUID")


@dataclass
class DeidReport:
    """What :func:`deidentify` did to one dataset.

    Attributes
    ----------
    removed : list of str
        Keywords (tag strings for private or unknown tags) removed.
    emptied : list of str
        Keywords made zero-length, dates included when not shifted.
    replaced : list of str
        Keywords given dummy values.
    uids_remapped : int
        Number of UID values replaced.
    dates_shifted : int
        Number of DA/DT elements shifted; 0 when dates were emptied instead.
    burned_in_annotation : bool
        The pixels may carry identifying text (``BurnedInAnnotation`` is
        ``"YES"``, or absent on a US/SC/OT/XC/ES object). The profile cannot
        remove it: warn the user.
    """

    removed: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    uids_remapped: int = 0
    dates_shifted: int = 0
    burned_in_annotation: bool = False


def is_uid_preserved(uid: str) -> bool:
    """Return whether ``uid`` is a well-known DICOM UID, kept as it is.

    Parameters
    ----------
    uid : str

    Returns
    -------
    bool
        True for UIDs in the standard's registry (SOP classes, transfer
        syntaxes, coding schemes, ...): they identify no patient.
    """
    return str(uid).strip() in UID_dictionary


def _note(lst: list[str], name: str) -> None:
    if name not in lst:
        lst.append(name)


def _values(elem: pydicom.DataElement) -> list:
    return list(elem.value) if elem.VM > 1 else [elem.value]


def _set(elem: pydicom.DataElement, new: list) -> None:
    elem.value = new if len(new) > 1 else new[0]


class _Cleaner:
    def __init__(self, salt: str, shift: int | None, report: DeidReport):
        self.salt, self.shift, self.report = salt, shift, report

    def uid(self, old: str) -> str:
        old = str(old).strip()
        if not old or is_uid_preserved(old):
            return old
        self.report.uids_remapped += 1
        # pydicom's generate_uid(prefix=None, ...) ignores entropy_srcs and
        # returns a random UUID, so derive the 2.25 UUID ourselves: a keyed
        # hash of the old UID, formatted as a (pseudo-random) version-4 UUID.
        digest = hmac.new(self.salt.encode(), old.encode(), hashlib.sha256).digest()
        return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"

    def date(self, value: str, vr: str) -> str | None:
        """Shift a DA or DT value (its first 8 characters); None to empty it."""
        value = str(value).strip()
        if not value:
            return value
        if self.shift is None or (vr == "DA" and len(value) != 8):
            return None
        try:
            day = _dt.datetime.strptime(value[:8], "%Y%m%d")
            new = day + _dt.timedelta(days=self.shift)
        except (ValueError, OverflowError):
            return None
        return new.strftime("%Y%m%d").zfill(8) + value[8:]

    def dataset(self, ds: Dataset) -> None:
        report = self.report
        for tag in list(ds.keys()):
            elem = ds[tag]
            name = elem.keyword or str(tag)
            action = _ACTIONS.get(name, "X" if elem.VR == "PN" else None)
            if tag.is_private or not elem.keyword or tag.group >> 8 in (0x50, 0x60):
                # Private tags and creators, tags unknown to the dictionary,
                # curves (50xx) and overlays (60xx: data and comments are X,
                # the rest of the group is useless without them).
                action = "X"
            if action == "X":
                del ds[tag]
                _note(report.removed, name)
            elif action == "Z":
                elem.value = elem.empty_value
                _note(report.emptied, name)
            elif action == "D":
                elem.value = _D[name]
                _note(report.replaced, name)
            elif elem.VR == "SQ":
                for item in elem.value:
                    self.dataset(item)
            elif elem.VR == "UI" and elem.VM and not name.endswith(_TYPE_UIDS):
                _set(elem, [self.uid(v) for v in _values(elem)])
            elif elem.VR in ("DA", "DT", "TM"):
                self.dates(elem)

    def dates(self, elem: pydicom.DataElement) -> None:
        if elem.VM == 0 or (self.shift is not None and elem.VR == "TM"):
            return
        new = [self.date(v, elem.VR) for v in _values(elem)]
        if None in new:  # dates removed, or an invalid date
            elem.value = elem.empty_value
            _note(self.report.emptied, elem.keyword)
        else:
            _set(elem, new)
            self.report.dates_shifted += 1


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def deidentify(
    ds: Dataset,
    *,
    salt: str | bytes | None = None,
    date_shift_days: int | None = None,
) -> tuple[Dataset, DeidReport]:
    """Apply the PS3.15 Basic Application Level Confidentiality Profile.

    Parameters
    ----------
    ds : pydicom.Dataset
        The dataset; it is deep-copied and never changed.
    salt : str or bytes, optional
        Secret mixed into every remapped UID. The same UID with the same salt
        always maps to the same new ``2.25.`` UID, so files of one study or
        series stay together. ``None`` draws a random salt for this call only:
        a caller exporting several files of one series **must pass the same
        salt** to every call, and keep it secret.
    date_shift_days : int, optional
        ``None`` empties every date and time. An integer shifts every DA and
        DT value by that many days (times are kept); invalid dates are
        emptied. Use the same value for every file of one patient.

    Returns
    -------
    pydicom.Dataset
        The de-identified copy. Pixel data is kept bit for bit.
    DeidReport
        What was removed, emptied, replaced and remapped.
    """
    if salt is None:
        salt = secrets.token_hex(16)
    salt_str = salt.hex() if isinstance(salt, bytes) else str(salt)
    modality = str(ds.get("Modality", "")).upper()
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    report = DeidReport(
        burned_in_annotation=burned == "YES"
        or (not burned and modality in BURNED_IN_MODALITIES)
    )
    out = copy.deepcopy(ds)
    cleaner = _Cleaner(salt_str, date_shift_days, report)
    cleaner.dataset(out)

    if getattr(out, "file_meta", None) is not None:
        # Same rules: station AE titles go, MediaStorageSOPInstanceUID is
        # remapped like the SOPInstanceUID it repeats.
        cleaner.dataset(out.file_meta)
        if out.get("SOPInstanceUID"):
            out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID

    shifted = date_shift_days is not None
    out.PatientIdentityRemoved = "YES"
    # LO allows 64 characters per value: the parts are separate values.
    dates = f"dates shifted by {date_shift_days} days" if shifted else "dates removed"
    out.DeidentificationMethod = [METHOD, "medimg-lab", dates]
    codes = [_CODE_BASIC, _CODE_DATES] if shifted else [_CODE_BASIC]
    out.DeidentificationMethodCodeSequence = Sequence([_code(*c) for c in codes])
    out.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"
    return out, report


def deidentified_bytes(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    *,
    salt: str | bytes | None = None,
    date_shift_days: int | None = None,
) -> tuple[bytes, DeidReport]:
    """Read a DICOM file and return its de-identified encoding, in memory.

    Parameters
    ----------
    source : path-like or bytes-like
        The DICOM file, or its content.
    salt, date_shift_days
        As for :func:`deidentify`: pass the same ``salt`` (and shift) for
        every file of one series.

    Returns
    -------
    bytes
        A DICOM Part 10 file.
    DeidReport
        What was done; check ``burned_in_annotation`` and warn the user.

    Raises
    ------
    NotAnImageError
        If ``source`` cannot be read as (or re-encoded to) a DICOM file.
    NotFoundError
        If the ``source`` path does not exist.
    """
    is_bytes = isinstance(source, bytes | bytearray | memoryview)
    name = "<bytes>" if is_bytes else str(source)
    try:
        ds = pydicom.dcmread(io.BytesIO(bytes(source)) if is_bytes else source)
        ds_out, report = deidentify(ds, salt=salt, date_shift_days=date_shift_days)
        buf = io.BytesIO()
        ds_out.save_as(buf, enforce_file_format=True)
    except FileNotFoundError as exc:
        raise NotFoundError(
            name, "does not exist.", "Check the path and its spelling."
        ) from exc
    except Exception as exc:
        raise NotAnImageError(
            name,
            f"could not be read as a DICOM file ({type(exc).__name__}: "
            f"{str(exc)[:200]}).",
            "Pass a complete DICOM Part 10 file (128-byte preamble, 'DICM' "
            "prefix, file meta information) as a path or as bytes.",
        ) from exc
    return buf.getvalue(), report


def export_deidentified(
    source: str | os.PathLike | bytes | bytearray | memoryview,
    out: str | os.PathLike,
    *,
    salt: str | bytes | None = None,
    date_shift_days: int | None = None,
    overwrite: bool = False,
) -> DeidReport:
    """Read a DICOM file, de-identify it and write the result atomically.

    Parameters
    ----------
    source : path-like or bytes-like
        The DICOM file, or its content.
    out : path-like
        The file to write. It is never the input file.
    salt, date_shift_days
        As for :func:`deidentify`. Pass the same ``salt`` (and shift) for every
        file of one series, or the exported files no longer share study,
        series and frame-of-reference UIDs.
    overwrite : bool
        Replace an existing ``out`` (never the input).

    Returns
    -------
    DeidReport
        What was done; check ``burned_in_annotation`` and warn the user.

    Raises
    ------
    NotAnImageError
        If ``source`` cannot be read as (or re-encoded to) a DICOM file.
    NotFoundError
        If the ``source`` path does not exist.
    OutputExistsError
        If ``out`` is the input, or exists and ``overwrite`` is false.
    """
    # Encoded in memory first: a damaged input fails here, before any file
    # is touched, and disk errors from atomic_write stay what they are.
    payload, report = deidentified_bytes(
        source, salt=salt, date_shift_days=date_shift_days
    )
    is_bytes = isinstance(source, bytes | bytearray | memoryview)
    atomic_write(
        out,
        lambda tmp: tmp.write_bytes(payload),
        overwrite=overwrite,
        protect=[None if is_bytes else source],
    )
    return report
