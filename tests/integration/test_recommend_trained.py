"""The recommend service with trained artifacts: strategies, photo embeddings,
similar garments, and switching to a newly published version under load."""

from __future__ import annotations

import threading
from dataclasses import astuple

import grpc
import numpy as np
import pytest

from drape.cli.stack import Stack, ephemeral
from drape.cli.train.recsys import train_recsys
from drape.recsys.datasets import attribute_vectors
from drape.recsys.index import EmbeddingIndex
from drape.services.events.store import StoredEvent, open_event_store
from drape.services.runtime.config import DrapeConfig
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers
from drape.v1 import common_pb2, recommend_pb2, recommend_pb2_grpc
from tests.conftest import wait_until

EXPERIMENT = """\
name: ranking
salt: t
variants:
  - {name: hybrid, share: 1, strategy: hybrid}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.recommend.refresh_s = 0.3
    (root / "exp.yaml").write_text(EXPERIMENT)
    config.recommend.experiments_path = str(root / "exp.yaml")
    catalog = generate_catalog(800, seed=9)
    catalog.save(config.catalog_path())
    shoppers = generate_shoppers(catalog, 300, 12_000, seed=9)
    store = open_event_store(config.events_store_url())
    store.append([StoredEvent(*row) for row in shoppers.events.itertuples(index=False)])
    store.close()
    EmbeddingIndex.build(catalog.ids, attribute_vectors(catalog)).save(config.embeddings_path())
    with Stack(config, services=["events", "recommend"], run_dir=root / "run") as stack:
        channel = grpc.insecure_channel(stack.address("recommend"))
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        request = recommend_pb2.RecommendRequest(user_id="u000001", k=10)
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(request, timeout=5)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "drape train recsys" in err.value.details()
        version = train_recsys(config, quiet=True)
        assert wait_until(lambda: _version(stub) == f"hybrid-{version}", timeout=20)
        yield config, stub, catalog, shoppers
        channel.close()


def _version(stub) -> str:
    try:
        return stub.Recommend(
            recommend_pb2.RecommendRequest(user_id="u000001", k=1), timeout=5
        ).model_version
    except grpc.RpcError:
        return ""


def test_hybrid_items_carry_their_channels(trained):
    _, stub, _, _ = trained
    reply = stub.Recommend(recommend_pb2.RecommendRequest(user_id="u000002", k=20), timeout=5)
    assert reply.assignment.strategy == "hybrid" and len(reply.items) == 20
    channels = {c.channel for item in reply.items for c in item.channels}
    assert common_pb2.CHANNEL_COLLABORATIVE in channels
    assert all(item.channels for item in reply.items)


def test_unknown_user_is_cold_start_not_an_error(trained):
    _, stub, _, _ = trained
    reply = stub.Recommend(recommend_pb2.RecommendRequest(user_id="first-visit", k=5), timeout=5)
    assert len(reply.items) == 5
    assert {c.channel for i in reply.items for c in i.channels} == {common_pb2.CHANNEL_POPULARITY}


def test_photo_embedding_drives_the_photo_channel(trained):
    _, stub, catalog, _ = trained
    vector = attribute_vectors(catalog)[42]
    reply = stub.Recommend(
        recommend_pb2.RecommendRequest(user_id="first-visit", k=5, photo_embedding=vector.tolist()),
        timeout=5,
    )
    assert common_pb2.CHANNEL_PHOTO in {c.channel for c in reply.items[0].channels}
    assert reply.items[0].garment.category == catalog.frame["category"].iloc[42]
    for bad, fragment in (
        ([1.0, 2.0], "has 2 values"),
        ([float("nan")] * len(vector), "finite"),
        ([0.0] * len(vector), "zeros"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(
                recommend_pb2.RecommendRequest(user_id="u", k=5, photo_embedding=bad), timeout=5
            )
        assert (
            err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and fragment in err.value.details()
        )


def test_similar_garments(trained):
    _, stub, catalog, _ = trained
    reply = stub.SimilarGarments(
        recommend_pb2.SimilarGarmentsRequest(garment_id="g000010", k=5), timeout=5
    )
    assert len(reply.items) == 5
    assert all(i.garment.category == catalog.frame["category"].iloc[10] for i in reply.items)
    assert all(i.channels[0].channel == common_pb2.CHANNEL_SIMILAR for i in reply.items)
    with pytest.raises(grpc.RpcError) as err:
        stub.SimilarGarments(
            recommend_pb2.SimilarGarmentsRequest(garment_id="nope", k=5), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_new_version_is_picked_up_without_dropping_requests(trained):
    config, stub, _, _ = trained
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        for _ in range(5000):  # bounded
            if stop.is_set():
                return
            try:
                stub.Recommend(recommend_pb2.RecommendRequest(user_id="u000003", k=10), timeout=5)
            except grpc.RpcError as exc:
                failures.append(exc.code().name)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        version = train_recsys(config, quiet=True)
        assert wait_until(lambda: _version(stub) == f"hybrid-{version}", timeout=20)
    finally:
        stop.set()
        thread.join(30)
    assert failures == []


def test_recommendations_leave_out_what_the_user_bought(trained):
    _, stub, _catalog, shoppers = trained
    events = shoppers.events
    user = events.loc[events["type"] == "purchase", "user_id"].iloc[0]
    bought = set(
        events.loc[(events["user_id"] == user) & (events["type"] == "purchase"), "garment_id"]
    )
    reply = stub.Recommend(recommend_pb2.RecommendRequest(user_id=user, k=50), timeout=5)
    assert not bought & {i.garment.garment_id for i in reply.items}
    assert np.all([i.garment.in_stock for i in reply.items])


def test_garments_a_shopper_engaged_with_but_did_not_buy_can_come_back(trained):
    _, stub, catalog, shoppers = trained
    events = shoppers.events
    bought = events[events["type"] == "purchase"].groupby("user_id")["garment_id"].agg(set)
    engaged = events[events["type"].isin(["view", "tryon_view", "add_to_cart"])]
    engaged = engaged[catalog.in_stock[catalog.positions(engaged["garment_id"])]]
    served = 0
    for user, garments in engaged.groupby("user_id")["garment_id"]:
        again = set(garments) - bought.get(user, set())
        reply = stub.Recommend(recommend_pb2.RecommendRequest(user_id=user, k=50), timeout=5)
        back = [i for i in reply.items if i.garment.garment_id in again]
        served += bool(back)
        # Each says it came from the shopper's own engagement (and maybe other channels too).
        for item in back:
            assert common_pb2.CHANNEL_ENGAGEMENT in {c.channel for c in item.channels}
        if served >= 5:
            break
    assert served >= 5, "the tuned blend should bring engaged garments back to several shoppers"


def test_stored_event_fields_match_the_store_columns():
    # The fixture builds StoredEvents from the synthetic frame's rows positionally.
    catalog = generate_catalog(5, seed=1)
    row = next(generate_shoppers(catalog, 2, 3, seed=1).events.itertuples(index=False))
    assert astuple(StoredEvent(*row)) == tuple(row)


def test_sighup_loads_a_new_version_without_waiting_for_the_refresh(tmp_path):
    import os
    import signal

    config = ephemeral(DrapeConfig(data_dir=tmp_path / "data"))
    config.recommend.refresh_s = 600  # only a signal can make it look again
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    config.recommend.experiments_path = str(tmp_path / "exp.yaml")
    catalog = generate_catalog(200, seed=4)
    catalog.save(config.catalog_path())
    store = open_event_store(config.events_store_url())
    shoppers = generate_shoppers(catalog, 60, 2_000, seed=4)
    store.append([StoredEvent(*row) for row in shoppers.events.itertuples(index=False)])
    store.close()
    assert config.recommend.server.processes > 1  # the supervisor forwards the signal
    with Stack(config, services=["recommend"], run_dir=tmp_path / "run") as stack:
        # Eight connections: the kernel spreads them over the worker processes.
        channels = [
            grpc.insecure_channel(
                stack.address("recommend"), options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(8)
        ]
        stubs = [recommend_pb2_grpc.RecommendServiceStub(c) for c in channels]
        assert {_version(stub) for stub in stubs} == {""}  # FAILED_PRECONDITION: not trained
        version = train_recsys(config, quiet=True)
        assert not wait_until(lambda: _version(stubs[0]) != "", timeout=1.0)
        os.kill(stack.process("recommend").pid, signal.SIGHUP)
        assert wait_until(
            lambda: {_version(stub) for stub in stubs} == {f"hybrid-{version}"}, timeout=20
        )
        for channel in channels:
            channel.close()
