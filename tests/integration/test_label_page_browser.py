"""The labelling page in a real browser: Debian's Chromium, headless, driven by Selenium
through Debian's chromedriver. Clicks and keys change the labels file on disk; a screenshot
of the page is kept as a test artefact (build/test-artifacts/label-page.png) to look at."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import synthdata
from cloud_tools.dataset.captures import captures, read_labels
from cloud_tools.dataset.label_server import LabelServer, LabelSession
from simulator.mqtt.testing import random_loopback_host
from tests.conftest import REPO
from tests.support.capture_folder import write_captures

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTEFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO / "build" / "test-artifacts")

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = "Chromium and chromedriver are not installed (.ci/run installs them)"
        if os.environ.get("EDGE_REQUIRE_TOOLS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "data"
    write_captures(folder, 6)
    server = LabelServer(LabelSession(folder, list(synthdata.LABELS)), random_loopback_host(), 0)
    url = server.start()
    try:
        yield url, folder
    finally:
        server.stop()


def _label_of(folder: Path, index: int) -> str | None:
    key = captures(folder)[index].key
    record = read_labels(folder).get(key)
    return None if record is None else str(record["label"])


def _top1(folder: Path, index: int) -> str:
    return captures(folder)[index].top_k[0][0]


def test_clicks_and_keys_label_the_frames_and_the_file_follows(
    browser: webdriver.Chrome, page: tuple[str, Path]
) -> None:
    url, folder = page
    wait = WebDriverWait(browser, 20)
    browser.get(url)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    body = browser.find_element(By.TAG_NAME, "body")

    def progress(text: str) -> None:
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid=progress]").text == text)

    body.send_keys(Keys.ENTER)  # accept the model's answer for frame 0
    progress("1 / 6 labelled")
    assert _label_of(folder, 0) == _top1(folder, 0)

    browser.find_element(By.CSS_SELECTOR, "[data-testid=class-heart]").click()  # frame 1
    progress("2 / 6 labelled")
    assert _label_of(folder, 1) == "heart"

    body.send_keys("3")  # the third class, triangle, for frame 2
    progress("3 / 6 labelled")
    assert _label_of(folder, 2) == "triangle"

    body.send_keys("u")  # undo: frame 2 is unlabelled again
    progress("2 / 6 labelled")
    assert _label_of(folder, 2) is None

    browser.find_element(By.CSS_SELECTOR, "[data-testid=tile-4]").click()
    body.send_keys("a")  # accept on the chosen frame
    progress("3 / 6 labelled")
    assert _label_of(folder, 4) == _top1(folder, 4)
    shown = browser.find_element(By.CSS_SELECTOR, "[data-testid=label-1]").text
    assert shown.endswith("heart")

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTEFACTS / "label-page.png"))
