"""Preview outcomes by name, one spelling for the metric labels, the exposure log and the
reports."""

from __future__ import annotations

from drape.v1 import common_pb2


def preview_status_name(status: int) -> str:
    """``ok``, ``cached``, ``timed_out``, ... for a ``PreviewStatus``."""
    return common_pb2.PreviewStatus.Name(status).removeprefix("PREVIEW_STATUS_").lower()


# Every status a shown garment's preview can have (the proto's, less UNSPECIFIED).
PREVIEW_STATUSES = tuple(
    preview_status_name(value)
    for value in common_pb2.PreviewStatus.values()
    if value != common_pb2.PREVIEW_STATUS_UNSPECIFIED
)
