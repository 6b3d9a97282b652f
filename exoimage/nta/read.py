"""Choose the NTA reader by file content."""

from __future__ import annotations

from ._common import NtaReadError, NtaResult, apply_dilution, read_text
from .nanosight import is_nanosight_summary, read_nanosight_summary
from .zetaview import is_zetaview_txt, read_zetaview_txt

__all__ = ["read_nta"]


def read_nta(path, sample: str | None = None, dilution_factor: float | None = None, *,
             with_particle_files: bool = True) -> NtaResult:
    """Read a NanoSight ``ExperimentSummary.csv`` or a ZetaView ``.txt`` export.

    The format is recognised from the content, not the file name.

    Parameters
    ----------
    path : str or Path
    sample : str, optional
        Sample name overriding the file's own.
    dilution_factor : float, optional
        Dilution to apply when the file recorded none (see
        :func:`exoimage.nta.apply_dilution`; a different factor than the one
        the file recorded raises ``ValueError``).
    with_particle_files : bool
        NanoSight: also read the per-video ``_ParticleData.csv`` /
        ``_AllTracks.csv`` next to the summary (a table that cannot be read is
        left out and said in ``notes``).

    Returns
    -------
    NtaResult

    Raises
    ------
    NtaReadError
        Unknown format (another instrument's export, an image, ...), or any
        problem the specific reader reports; one line naming the file.
    """
    p, text = read_text(path)
    if is_nanosight_summary(text):
        result = read_nanosight_summary(p, sample, with_particle_files=with_particle_files, _text=text)
    elif is_zetaview_txt(text):
        result = read_zetaview_txt(p, sample, _text=text)
    else:
        first = text.lstrip("\ufeff").split("\n", 1)[0].strip()[:60]
        raise NtaReadError(p, "not a recognised NTA export (expected a NanoSight ExperimentSummary.csv "
                              f"or a ZetaView .txt; first line {first!r})")
    if dilution_factor is not None:
        result = apply_dilution(result, dilution_factor)
    return result
