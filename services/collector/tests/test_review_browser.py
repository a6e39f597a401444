"""The review UI in a real headless Chromium: sign in, write an answer, skip, delete, see the status change; a
contributor answering offered questions (one by one and as an uploaded file) and a reviewer approving one."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from collector_helpers import TOKENS, Collector, record
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from prefloop_core.contracts import ReviewStatus
from prefloop_collector.auth import COOKIE
from prefloop_collector.contributors import Contributors
from prefloop_collector.settings import CollectorSettings

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
    assert "not a reviewer's or a contributor's token" in browser.find_element(By.ID, "error").text
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


def sign_in(driver: webdriver.Chrome, url: str, token: str, lands_on: str) -> None:
    driver.get(f"{url}/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 10).until(ec.url_contains(lands_on))


def test_contributors_answer_offered_questions_and_a_reviewer_approves_one(
    browser: webdriver.Chrome, collector: Collector, tmp_path: Path
) -> None:
    collector.queue.ingest(
        [
            record(1, game="palworld", question="팰월드에서 램볼은 어디에 사나요?", answer="램볼은 바다에 삽니다."),
            record(2, game="minecraft", question="What does a creeper fear?", answer="Nothing at all."),
            record(3, game="overwatch", question="Who heals with a staff?", answer="Reinhardt."),
            record(4, game="overwatch", question="Not offered: who flies?", answer="Nobody."),
        ]
    )
    collector.queue.offer([1, 2, 3], None)
    people = Contributors(collector.queue, CollectorSettings(home=collector.home))
    hana, dev = people.invite("hana").token, people.invite("dev").token
    wait = WebDriverWait(browser, 10)

    # A contributor lands on their own page, sees only offered questions, and cannot open the review queue.
    sign_in(browser, collector.url, hana, "/contribute")
    assert browser.find_element(By.ID, "contributor").text == "hana"
    assert browser.find_element(By.ID, "question").text == "팰월드에서 램볼은 어디에 사나요?"
    assert "3 question(s)" in browser.find_element(By.ID, "counts").text
    browser.get(f"{collector.url}/queue")
    wait.until(ec.url_contains("/contribute"))
    browser.get(f"{collector.url}/items/4")
    wait.until(ec.url_contains("/contribute"))

    box = browser.find_element(By.ID, "answer")
    box.send_keys("램볼은 바다에 삽니다.")  # the model's wrong answer: refused, the draft kept
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    assert "judged wrong" in wait.until(ec.presence_of_element_located((By.ID, "refused"))).text
    box = browser.find_element(By.ID, "answer")
    assert box.get_attribute("value") == "램볼은 바다에 삽니다."
    box.clear()
    box.send_keys("램볼은 초반 평원에 삽니다.")
    screenshot(browser, tmp_path, "contribute")
    browser.find_element(By.ID, "submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "question"), "What does a creeper fear?"))
    browser.find_element(By.ID, "answer").send_keys("Cats and ocelots.")
    browser.find_element(By.ID, "submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "question"), "Who heals with a staff?"))
    assert "You have answered 2" in browser.find_element(By.ID, "counts").text

    # The other contributor fills in the JSON file and uploads it: item 2 agrees with hana's answer (a pair now),
    # item 1 differs (waits for a reviewer), item 3 is left empty.
    browser.delete_all_cookies()
    sign_in(browser, collector.url, dev, "/contribute")
    template = httpx.get(f"{collector.url}/contribute/template.json", cookies={COOKIE: dev}).json()
    assert [t["item_id"] for t in template] == [1, 2, 3]
    template[0]["answer"] = "램볼은 초원에 삽니다."
    template[1]["answer"] = "cats and  ocelots."
    upload = tmp_path / "questions.json"
    upload.write_text(json.dumps(template, ensure_ascii=False), encoding="utf-8")
    browser.find_element(By.ID, "file").send_keys(str(upload))
    browser.find_element(By.ID, "upload").click()
    assert "2 saved, 0 refused, 1 left empty" in wait.until(ec.presence_of_element_located((By.ID, "uploaded"))).text
    assert collector.queue.get(2).status is ReviewStatus.CHOSEN and collector.queue.get(2).chosen == "Cats and ocelots."
    broken = tmp_path / "broken.json"
    broken.write_text('[{"item_id": "one", "answer": "x"}]', encoding="utf-8")
    browser.find_element(By.ID, "file").send_keys(str(broken))
    browser.find_element(By.ID, "upload").click()
    problem = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".problem"))).text
    assert problem.startswith("broken.json item 0: item_id:")
    (tmp_path / "notes.txt").write_text("answers: cats", encoding="utf-8")
    browser.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.txt"))
    browser.find_element(By.ID, "upload").click()
    # The page still shows broken.json's problem until the upload's answer replaces it: wait for the new one's text.
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".problem"), "notes.txt"))
    problem = browser.find_element(By.CSS_SELECTOR, ".problem").text
    assert problem.startswith("notes.txt is not JSON (") and problem.endswith("save the file the page gave you")

    # The reviewer sees both answers to item 1 with their agreement and uses one.
    browser.delete_all_cookies()
    sign_in(browser, collector.url, TOKENS["minji"], "/queue")
    browser.get(f"{collector.url}/items/1")
    rows = browser.find_elements(By.CSS_SELECTOR, "#contributions tr.contribution")
    assert [r.find_element(By.CSS_SELECTOR, ".agreeing").text for r in rows] == ["1 of 2", "1 of 2"]
    screenshot(browser, tmp_path, "review-contributions")
    rows[1].find_element(By.CSS_SELECTOR, "button.approve").click()
    wait.until(ec.url_contains("/items/3"))
    approved = collector.queue.get(1)
    assert (approved.status, approved.chosen, approved.reviewer) == (ReviewStatus.CHOSEN, "램볼은 초원에 삽니다.", "minji")
    assert {s.name: s.agreement for s in people.stats()} == {"dev": 1.0, "hana": 0.5}

    browser.get(f"{collector.url}/items/4")
    browser.find_element(By.ID, "offer").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "offer"), "Withdraw from contributors"))
    assert collector.queue.get(4).offered
