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


def test_every_channel_the_ranker_names_has_its_value_in_the_api():
    from drape.recsys.hybrid import CHANNELS as RANKER_CHANNELS
    from drape.recsys.popularity import CHANNEL
    from drape.services.recommend.service import CHANNELS
    from drape.v1 import common_pb2

    assert set(CHANNELS) == {*RANKER_CHANNELS, CHANNEL, "similar"}
    named = {common_pb2.Channel.Name(v).removeprefix("CHANNEL_").lower() for v in CHANNELS.values()}
    assert named == set(CHANNELS)
