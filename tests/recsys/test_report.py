"""The experiment report: its numbers against an independent computation from the raw rows
(SQLite and PostgreSQL), the attribution rules case by case, its warnings, the command and
the HTML page as a browser shows it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from drape.cli.main import main
from drape.recsys.experiments import Experiment, Variant
from drape.recsys.report import DAY_US, ReportSettings, experiment_report
from drape.recsys.report_html import render
from drape.services.events.store import (
    EventStore,
    ExposedItem,
    StoredEvent,
    StoredExposure,
    open_event_store,
)
from drape.synthetic.experiment import GeneratedExperiment, store_experiment
from tests.conftest import chromium, needs_chromium

SPEC = GeneratedExperiment(users=600, days=7, seed=3)
UNTIL = SPEC.start_us + 8 * DAY_US
SETTINGS = ReportSettings(SPEC.experiment.name, SPEC.start_us, UNTIL)


@pytest.fixture
def store(event_store: EventStore) -> EventStore:
    return event_store


def _by_hand(store: EventStore) -> pd.DataFrame:
    """Per variant, from the raw rows with pandas, by the definitions in drape.recsys.outcomes."""
    arms = pd.DataFrame(store.query("SELECT recommendation_id, variant, user_id, served_at_us "
                                    "FROM exposure_arms"), columns=["rid", "variant", "user", "at"])  # fmt: skip
    items = pd.DataFrame(store.query("SELECT recommendation_id, garment_id FROM exposure_items"),
                         columns=["rid", "garment"])  # fmt: skip
    events = store.read_frame().drop(columns=["experiment", "variant"])
    users = arms.groupby("user").agg(variant=("variant", "first"), first=("at", "min"))
    shown = arms.merge(items, on="rid").groupby(["user", "garment"])["at"].agg(["min", "max"])
    bought = events[events.type == "purchase"].merge(
        shown, left_on=["user_id", "garment_id"], right_index=True)  # fmt: skip
    bought = bought[(bought.occurred_at_us >= bought["min"])
                    & (bought.occurred_at_us <= bought["max"] + 7 * DAY_US)
                    & (bought.occurred_at_us < UNTIL)]  # fmt: skip
    users["converted"] = users.index.isin(bought.user_id)
    users["revenue"] = (
        bought.groupby("user_id").value_minor.sum().reindex(users.index).fillna(0) / 100
    )
    ratings = events[events.type == "rating"].merge(users, left_on="user_id", right_index=True)
    ratings = ratings[ratings.occurred_at_us >= ratings["first"]]
    out = users.groupby("variant").agg(users=("converted", "size"), conversion=("converted", "mean"),
                                       revenue=("revenue", "mean"))  # fmt: skip
    out["mean_rating"] = ratings.groupby("variant").rating.mean()
    return out


def test_the_report_agrees_with_the_raw_rows(store: EventStore):
    store_experiment(store, SPEC)
    report = experiment_report(store, SETTINGS)
    expected = _by_hand(store)
    for variant, row in expected.iterrows():
        got = report["variants"][variant]
        assert got["users"] == row.users
        assert got["metrics"]["conversion"]["value"] == pytest.approx(row.conversion)
        assert got["metrics"]["revenue_per_user"]["value"] == pytest.approx(row.revenue)
        assert got["metrics"]["mean_rating"]["value"] == pytest.approx(row.mean_rating)
    assert report["sample_ratio"]["observed"] == list(expected.users)
    assert [d["version"] for d in report["definitions"]] == [SPEC.experiment.version]
    # One comparison per metric, Holm never below the raw p-value, CUPED where defined.
    assert {c["metric"] for c in report["comparisons"]} >= {"conversion", "mean_rating"}
    assert all(c["p_holm"] >= c["p_value"] - 1e-12 for c in report["comparisons"])
    conversion = next(c for c in report["comparisons"] if c["metric"] == "conversion")
    assert conversion["cuped"]["variance_reduction"] > 0
    looks = report["sequential"]["treatment"]
    assert (
        len(looks) == 8 and looks[-1]["users_treatment"] == report["variants"]["treatment"]["users"]
    )
    # The always-valid p-value never falls below the naive one at the same look.
    assert all(look["always_valid_p"] >= look["naive_p"] - 1e-9 for look in looks)


T0 = 1_796_083_200_000_000  # 2026-12-01
EXP = Experiment("tiny", "s", (Variant("control", 1), Variant("treatment", 1)))


def _shown(store: EventStore, rid: str, user: str, variant: str, at: int, garments) -> None:
    items = tuple(ExposedItem(r, g, "skipped") for r, g in enumerate(garments, 1))
    store.append_exposures([StoredExposure(rid, user, at, at, "popularity", "p", 10.0,
                                           (("tiny", variant, "v1"),), items)])  # fmt: skip


def _did(store: EventStore, eid: str, type_: str, user: str, garment: str, at: int,
         value: int = 0, rating: int = 0) -> None:  # fmt: skip
    store.append([StoredEvent(eid, type_, user, garment, at, at, "", "", rating, "", value)])


def test_attribution_rules_case_by_case(tmp_path: Path):
    store = open_event_store(f"sqlite:///{tmp_path / 'e.db'}")
    store.record_definitions([("tiny", "v1", json.dumps(EXP.definition()))])
    _shown(store, "r1", "a", "control", T0 + DAY_US, ["g1", "g2"])
    _did(store, "a-before", "purchase", "a", "g9", T0, value=500)  # pre-period: CUPED only
    _did(store, "a-rating-before", "rating", "a", "", T0, rating=1)  # before exposure: no
    _did(store, "a-not-shown", "purchase", "a", "g3", T0 + 2 * DAY_US, value=700)  # not shown
    _did(store, "a-late", "purchase", "a", "g2", T0 + 9 * DAY_US, value=800)  # after the window
    _did(store, "a-bought", "purchase", "a", "g1", T0 + 3 * DAY_US, value=1000)  # counts
    _did(store, "a-rating", "rating", "a", "", T0 + 3 * DAY_US, rating=5)
    _shown(store, "r2", "b", "treatment", T0 + DAY_US, ["g1"])
    _did(store, "b-cart", "add_to_cart", "b", "g1", T0 + DAY_US + 5)
    _shown(store, "r3", "c", "control", T0 + DAY_US, ["g1"])  # c is seen in both variants:
    _shown(store, "r4", "c", "treatment", T0 + 2 * DAY_US, ["g1"])  # left out, and said so
    report = experiment_report(store, ReportSettings("tiny", T0, T0 + 10 * DAY_US))
    store.close()
    control, treatment = report["variants"]["control"], report["variants"]["treatment"]
    assert (control["users"], treatment["users"], report["excluded_users"]) == (1, 1, 1)
    assert control["metrics"]["conversion"]["value"] == 1.0
    assert control["metrics"]["revenue_per_user"]["value"] == 10.0  # only the shown, in time
    assert control["metrics"]["mean_rating"]["value"] == 5.0
    assert control["ratings"] == [0, 0, 0, 0, 1]
    assert treatment["metrics"]["carted"]["value"] == 1.0
    assert treatment["metrics"]["conversion"]["value"] == 0.0
    assert any("more than one variant" in w for w in report["warnings"])


def test_a_sample_ratio_mismatch_is_the_first_thing_said(tmp_path: Path):
    store = open_event_store(f"sqlite:///{tmp_path / 'e.db'}", sqlite_synchronous="NORMAL")
    store_experiment(store, SPEC)
    # Lose every exposure of a third of the treated users, as a broken logger would.
    lost = [u for (u,) in store.query("SELECT DISTINCT user_id FROM exposure_arms WHERE "
                                      "variant = 'treatment' ORDER BY user_id")][::3]  # fmt: skip
    store._write(lambda db: [db.execute("DELETE FROM exposure_arms WHERE user_id = ?", (u,))
                             for u in lost])  # fmt: skip
    report = experiment_report(store, SETTINGS)
    store.close()
    assert report["sample_ratio"]["mismatch"]
    assert report["warnings"][0].startswith("SAMPLE RATIO MISMATCH")


def test_no_exposures_is_said_not_crashed(tmp_path: Path):
    store = open_event_store(f"sqlite:///{tmp_path / 'e.db'}")
    report = experiment_report(store, ReportSettings("nothing", 0, T0))
    store.close()
    assert report["users"] == 0 and any("no user was exposed" in w for w in report["warnings"])
    assert "<html" in render(report)


def test_the_command_writes_json_and_html_and_exits_3_on_a_warning(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = open_event_store(url, sqlite_synchronous="NORMAL")
    store_experiment(store, SPEC)
    store.close()
    args = ["report", "experiment", SPEC.experiment.name, "--store-url", url, "--since",
            "2026-12-01", "--until", "2026-12-09", "--json", str(tmp_path / "r.json"),
            "--html", str(tmp_path / "r.html")]  # fmt: skip
    code = main(args)
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == (3 if report["warnings"] else 0)
    assert "Conversion" in out and "Holm" in out and report["users"] == 600
    with pytest.raises(SystemExit):
        main(["report", "experiment", "x", "--store-url", url, "--since", "last tuesday"])
    assert main(["report", "experiment", "x", "--store-url", url, "--since", "2026-12-09",
                 "--until", "2026-12-01"]) == 2  # fmt: skip


@needs_chromium
def test_the_html_page_shows_its_plots_in_a_browser(tmp_path: Path):
    store = open_event_store(f"sqlite:///{tmp_path / 'e.db'}", sqlite_synchronous="NORMAL")
    store_experiment(store, SPEC)
    page = tmp_path / "report.html"
    page.write_text(render(experiment_report(store, SETTINGS)))
    store.close()
    shot = tmp_path / "shot.png"
    chromium(tmp_path / "profile", "--window-size=1300,2600", f"--screenshot={shot}", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # The variants' colours as drawn: bars (control blue, treatment orange) and the lift band.
    for colour in ((0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52)):
        assert (np.abs(pixels - colour).sum(axis=2) < 30).sum() > 2000
    band = (np.abs(pixels - (0xF8, 0xE6, 0xDC)).sum(axis=2) < 20).sum()
    assert band > 2000  # the interval, orange at 20% on white
