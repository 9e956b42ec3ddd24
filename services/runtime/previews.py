"""Preview outcomes by name, one spelling for the metric labels, the exposure log and the
reports."""

from __future__ import annotations

from drape.v1 import common_pb2


def preview_status_name(status: int) -> str:
    """``ok``, ``cached``, ``timed_out``, ... for a ``PreviewStatus``."""
    return common_pb2.PreviewStatus.Name(status).removeprefix("PREVIEW_STATUS_").lower()
