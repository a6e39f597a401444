"""The review UI in a real headless Chromium: sign in, write an answer, skip, delete, see the status change."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import TOKENS, Collector, record
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from prefloop_core.contracts import ReviewStatus

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "make setup installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def screenshot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    keep = os.environ.get("PREFLOOP_SCREENSHOT_DIR")  # set to refresh the README's pictures
    if keep:
        shutil.copy(path, Path(keep) / path.name)
    return path


def test_sign_in_answer_skip_delete_and_status(browser: webdriver.Chrome, collector: Collector, tmp_path: Path) -> None:
    collector.queue.ingest(
        [
            record(
                1,
                score=0.1,
                game="palworld",
                question="팰월드에서 램볼은 어디에 사나요?",
                context="램볼은 초반 평원에 서식하며 수작업과 운반 적성을 가진다.",
                answer="램볼은 바다에 삽니다.",
            ),
            record(2, score=0.2, game="minecraft"),
            record(3, score=0.3, game="overwatch"),
        ]
    )
    wait = WebDriverWait(browser, 10)
    browser.get(f"{collector.url}/queue")
    assert browser.current_url.endswith("/login")

    browser.find_element(By.ID, "token").send_keys("wrong-token")
    browser.find_element(By.ID, "sign-in").click()
    assert "not a reviewer's token" in browser.find_element(By.ID, "error").text
    browser.find_element(By.ID, "token").send_keys(TOKENS["minji"])
    browser.find_element(By.ID, "sign-in").click()
    wait.until(ec.url_contains("/queue"))
    assert browser.find_element(By.ID, "reviewer").text == "minji"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#items tr")) == 4  # header + 3 items

    browser.find_element(By.LINK_TEXT, "팰월드에서 램볼은 어디에 사나요?").click()
    wait.until(ec.url_contains("/items/1"))
    assert "초반 평원" in browser.find_element(By.ID, "context").text
    box = browser.find_element(By.ID, "chosen")
    box.send_keys("램볼은 초반 평원에 삽니다.")
    screenshot(browser, tmp_path, "review-item")
    box.send_keys(Keys.CONTROL, Keys.ENTER)  # save and next, without the mouse
    wait.until(ec.url_contains("/items/2"))
    saved = collector.queue.get(1)
    assert saved.chosen == "램볼은 초반 평원에 삽니다." and saved.reviewer == "minji"

    browser.find_element(By.ID, "chosen").send_keys(Keys.ESCAPE)
    browser.find_element(By.TAG_NAME, "body").send_keys("s")  # skip
    wait.until(ec.url_contains("/items/3"))
    assert collector.queue.get(2).status is ReviewStatus.SKIPPED

    browser.find_element(By.ID, "delete").click()
    wait.until(ec.alert_is_present()).accept()
    wait.until(ec.presence_of_element_located((By.ID, "all-done")))
    assert collector.queue.get(3).status is ReviewStatus.DELETED

    browser.get(f"{collector.url}/status")
    assert browser.find_element(By.ID, "count-chosen").text == "1"
    assert browser.find_element(By.ID, "count-skipped").text == "1"
    assert browser.find_element(By.ID, "count-deleted").text == "1"
    assert browser.find_element(By.ID, "count-pending").text == "0"
    bars = browser.find_elements(By.CSS_SELECTOR, "#balance rect.bar")
    assert {b.get_attribute("data-game") for b in bars} == {"minecraft", "palworld", "overwatch"}
    assert float(next(b for b in bars if b.get_attribute("data-game") == "palworld").get_attribute("width")) > 0
    assert screenshot(browser, tmp_path, "review-status").stat().st_size > 10_000


def test_a_conflicting_save_shows_the_other_answer_and_keeps_the_draft(browser: webdriver.Chrome, collector: Collector) -> None:
    collector.queue.ingest([record(1)])
    browser.get(f"{collector.url}/login")
    browser.find_element(By.ID, "token").send_keys(TOKENS["joon"])
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/queue"))
    browser.get(f"{collector.url}/items/1")
    # Meanwhile minji answers the same item through the API.
    item = collector.queue.get(1)
    collector.client("minji").post("/api/items/1/chosen", json={"chosen": "민지의 답", "version": item.version})
    browser.find_element(By.ID, "chosen").send_keys("준의 답")
    browser.find_element(By.ID, "save").click()
    assert "민지의 답" in browser.find_element(By.ID, "their-answer").text
    assert browser.find_element(By.ID, "chosen").get_attribute("value") == "준의 답"
    assert collector.queue.get(1).chosen == "민지의 답"
