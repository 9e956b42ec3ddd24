"""The recommend service's own wiring (its calls are tested on a running stack)."""

from __future__ import annotations

import threading

import faiss

from drape.services.recommend.service import build
from drape.services.runtime.config import DrapeConfig


def test_handler_threads_search_faiss_with_one_openmp_thread(tmp_path):
    # OpenMP keeps its thread count per thread: a setting made while the service is built
    # would not reach the threads that handle calls, and each search would wake a team.
    spec = build(DrapeConfig(data_dir=tmp_path))
    try:
        assert spec.on_thread_start is not None
        seen: list[int] = []

        def handler_thread() -> None:
            spec.on_thread_start()
            seen.append(faiss.omp_get_max_threads())

        thread = threading.Thread(target=handler_thread)
        thread.start()
        thread.join(timeout=10)
        assert seen == [1]
    finally:
        spec.on_stop()
