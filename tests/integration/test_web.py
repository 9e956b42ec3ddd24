"""The web front on the whole stack: previews by URL (a reply of eight in under 64 KB, each
fetched by its signed URL), the JSON front against the real gateway, and a shopper and an
analyst clicking through the pages in headless Chromium (driven by selenium), with a
screenshot of every step under test-output/browser/ and no JavaScript error allowed."""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from PIL import Image
from skimage import data as images

from drape.cli.stack import Stack, ephemeral, free_ports
from drape.models.images import encode_jpeg
from drape.services.runtime.config import DrapeConfig
from drape.services.web.server import WebServer
from drape.synthetic.catalog import write_generated_feed
from drape.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import ingest_feed, wait_until

EXPERIMENT = "storefront"
PLAN = f"""name: {EXPERIMENT}
salt: s-web
variants:
  - {{name: control, share: 50, previews: true, strategy: popularity}}
  - {{name: treatment, share: 50, previews: true, strategy: popularity}}
"""
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
OK = (common_pb2.PREVIEW_STATUS_OK, common_pb2.PREVIEW_STATUS_CACHED)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, WebServer]]:
    root = tmp_path_factory.mktemp("web")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.recommend.refresh_s = 0.3
    (root / "experiments.yaml").write_text(PLAN)
    config.recommend.experiments_path = str(root / "experiments.yaml")
    (port,) = free_ports(1)
    config.web.address = f"127.0.0.1:{port}"
    config.previews.public_url = f"http://127.0.0.1:{port}"
    feed = write_generated_feed(40, root / "feed", seed=3)
    stack = Stack(config, run_dir=root / "run").start(timeout=120)
    web = None
    try:
        ingest_feed(stack, feed, 40)
        config.web.gateway_address = stack.address("gateway")
        web = WebServer(config).start()
        yield stack, web
    finally:
        if web is not None:
            web.stop()
        stack.stop()


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}" if parts.query else parts.path)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def test_eight_previews_by_url_in_a_reply_under_64_kb(site):
    stack, web = site
    channel = grpc.insecure_channel(stack.address("gateway"))
    gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
    photo = common_pb2.Image(data=encode_jpeg(images.astronaut()))
    try:
        request = gateway_pb2.GatewayServiceRecommendRequest(user_id="url-shopper", k=8, photo=photo,
                                                             previews=True)  # fmt: skip
        reply = gateway.Recommend(request, timeout=180)
        inline = gateway.Recommend(
            gateway_pb2.GatewayServiceRecommendRequest(
                user_id="url-shopper", k=8, photo=photo, previews=True,
                delivery=common_pb2.PREVIEW_DELIVERY_INLINE),
            timeout=180,
        )  # fmt: skip
    finally:
        channel.close()
    assert len(reply.items) == 8
    assert reply.ByteSize() < 64 * 1024, reply.ByteSize()
    print(
        f"Recommend, 8 previews by URL: {reply.ByteSize()} bytes; inline: {inline.ByteSize()} bytes"
    )
    for item, same in zip(reply.items, inline.items, strict=True):
        preview = item.preview
        assert preview.status in OK, preview.reason
        assert not preview.image.data and preview.image.width == 512 and preview.image.height == 512
        assert preview.url.startswith(web.url + "/v1/previews/")
        assert preview.url_expires_at.seconds > time.time() + 3600
        status, head, body = _get(preview.url)
        assert status == 200 and head["content-type"] == "image/jpeg"
        assert "immutable" in head["cache-control"] and head["etag"]
        # The same composite the inline reply carries, byte for byte.
        assert same.preview.status == common_pb2.PREVIEW_STATUS_CACHED
        assert body == same.preview.image.data
        status, head, small = _get(preview.url + "&size=512&format=webp")
        with Image.open(io.BytesIO(small)) as image:
            assert status == 200 and image.format == "WEBP" and image.size == (512, 512)


def test_the_json_front_is_the_gateway_in_json(site):
    _, web = site
    port = int(web.url.rsplit(":", 1)[1])

    def post(path: str, payload: dict) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request(
                "POST", path, json.dumps(payload), {"content-type": "application/json"}
            )
            reply = connection.getresponse()
            return reply.status, json.loads(reply.read())
        finally:
            connection.close()

    status, reply = post("/v1/recommend", {"k": 3})
    assert status == 400 and reply["error"]["status"] == "INVALID_ARGUMENT"
    assert (
        reply["error"]["message"] == "user_id: is required (use a stable anonymous id for guests)"
    )
    status, reply = post("/v1/recommend", {"userId": "json-shopper", "k": 3})
    assert (
        status == 200
        and len(reply["items"]) == 3
        and reply["assignment"]["experiment"] == EXPERIMENT
    )
    status, reply = post("/v1/track", {"events": [{"eventId": "e-1", "type": "EVENT_TYPE_RATING",
                                                   "userId": "json-shopper", "rating": 9}]})  # fmt: skip
    assert status == 400 and "rating" in reply["error"]["message"]
    status, reply = post(
        "/v1/try-on", {"userId": "u", "photo": {"data": "aGVsbG8="}, "garmentId": "g"}
    )
    assert status == 400 and "photo" in reply["error"]["message"]


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if (binary is None or driver_path is None) and not os.environ.get("CI"):
        pytest.skip("Chromium and chromedriver are installed by scripts/install.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1700",
                 "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _no_console_errors(driver) -> None:
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def _shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_a_shopper_buys_and_rates_then_the_analyst_sees_it(site, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By

    _, web = site
    driver = browser
    shopper = "browser-shopper-1"
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode_jpeg(images.astronaut(), quality=92))

    driver.get(web.url + "/")
    assert wait_until(
        lambda: driver.find_element(By.ID, "status").text == "Photo ready.", timeout=30
    )
    field = driver.find_element(By.ID, "user-id")
    field.clear()
    field.send_keys(shopper)
    driver.find_element(By.ID, "photo-input").send_keys(str(photo))
    assert wait_until(lambda: driver.find_element(By.ID, "photo-preview").get_attribute("src").startswith("blob:"),
                      timeout=10)  # fmt: skip
    _shot(driver, "1-photo-uploaded")
    driver.find_element(By.ID, "recommend").click()

    def cards():
        return driver.find_elements(By.CSS_SELECTOR, "#garments .card")

    assert wait_until(lambda: len(cards()) == 8, timeout=120), driver.find_element(
        By.ID, "status"
    ).text
    variant = driver.find_element(By.ID, "variant").get_attribute("data-variant")
    assert variant in ("control", "treatment")
    _shot(driver, "2-recommendations")

    def settled() -> bool:  # every card has its preview, or says why it has none
        return all(c.find_elements(By.CSS_SELECTOR, ".frame img") or
                   c.get_attribute("data-preview") in ("failed", "unsupported") for c in cards())  # fmt: skip

    assert wait_until(settled, timeout=300, interval=0.5), [c.text for c in cards()]
    shown = [c for c in cards() if c.find_elements(By.CSS_SELECTOR, ".frame img")]
    assert len(shown) >= 6, [c.get_attribute("data-preview") for c in cards()]
    assert wait_until(lambda: all(driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", c.find_element(By.CSS_SELECTOR, "img"))
        for c in shown), timeout=60)  # fmt: skip
    _shot(driver, "3-previews")

    chosen = shown[0]
    chosen.find_element(By.CSS_SELECTOR, '[data-action="buy"]').click()
    assert wait_until(
        lambda: "Bought" in chosen.find_element(By.CSS_SELECTOR, ".feedback").text, timeout=30
    )
    chosen.find_element(By.CSS_SELECTOR, '[data-rating="4"]').click()
    assert wait_until(
        lambda: "Rated 4/5" in chosen.find_element(By.CSS_SELECTOR, ".feedback").text, timeout=30
    )
    _shot(driver, "4-bought-and-rated")
    _no_console_errors(driver)

    driver.get(f"{web.url}/analyst?experiment={EXPERIMENT}")

    def counted() -> bool:
        rows = driver.find_elements(By.CSS_SELECTOR, f'#variants tr[data-variant="{variant}"]')
        if not rows:
            driver.find_element(By.ID, "refresh").click()
            return False
        cells = {
            td.get_attribute("data-metric"): td.text
            for td in rows[0].find_elements(By.TAG_NAME, "td")
        }
        if cells.get("purchasers") == "1" and cells.get("ratings") == "1":
            return True
        driver.find_element(By.ID, "refresh").click()
        return False

    assert wait_until(counted, timeout=60, interval=2), driver.find_element(By.ID, "variants").text
    cells = driver.find_elements(By.CSS_SELECTOR, f'#variants tr[data-variant="{variant}"] td')
    assert cells[5].text == "4.00"  # the mean rating: the one rating of 4
    assert wait_until(lambda: driver.execute_script(
        "const f = document.getElementById('report'); return f.contentDocument && "
        "f.contentDocument.querySelectorAll('svg').length"), timeout=30)  # fmt: skip
    _shot(driver, "5-analyst")
    _no_console_errors(driver)


EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_the_client_examples_in_the_docs_run(site, tmp_path: Path):
    import subprocess
    import sys

    stack, web = site
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(encode_jpeg(images.astronaut(), quality=92))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GATEWAY": stack.address("gateway"), "WEB": web.url}  # fmt: skip

    def run(*command: str) -> str:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = run(
        sys.executable, str(EXAMPLES / "grpc_client.py"), stack.address("gateway"), str(photo)
    )
    assert "purchase tracked: stored=1" in out and f"{web.url}/v1/previews/" in out
    out = run("bash", str(EXAMPLES / "grpcurl.sh"), str(photo))
    assert "drape.v1.GatewayService.Recommend" in out and '"recommendation_id"' in out
    out = run("bash", str(EXAMPLES / "curl.sh"), str(photo))
    assert "immutable" in out and "image/webp" in out and "user_id: is required" in out
    assert '"stored":1' in out
    with Image.open(tmp_path / "preview.webp") as image:
        assert image.format == "WEBP" and max(image.size) == 512
