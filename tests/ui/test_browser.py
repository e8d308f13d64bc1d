"""The dashboard in a real headless browser: Debian's chromium driven by selenium through Debian's
chromedriver (nothing is downloaded), against the real server and real runs
(tests/ui/conftest.py). What it shows is checked against the run's files."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest

from .conftest import Runs, rows
from .test_http import GOPHER, MIN_WORDS, count, step_dirs

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow  # a real browser: in the full run, out of the quick loop

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900")  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/system-packages.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="prepflow-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(browser: webdriver.Chrome, condition, timeout: float = 10):
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda _: condition())


def text(browser: webdriver.Chrome, css: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, css).text


def test_the_run_page_shows_the_funnel_the_files_hold(browser, ui: str, runs: Runs):
    browser.get(ui + "/")
    browser.find_element(By.LINK_TEXT, "clean").click()
    wait(browser, lambda: browser.find_elements(By.ID, "funnel"))
    run, upstream = runs.run("clean"), "00-input"
    assert text(browser, "#run-status") == "finished"
    for step_dir in step_dirs(run):
        k = int(step_dir.split("-")[0])
        dropped, failed = count(run, "dropped", step_dir), count(run, "failures", step_dir)
        shown = {
            "rows_in": count(run, "steps", upstream),
            "kept": count(run, "steps", upstream) - dropped - failed,
            "dropped": dropped,
            "failed": failed,
            "rows_out": count(run, "steps", step_dir),
        }
        for field, expected in shown.items():
            assert text(browser, f"#step-{k}-{field}") == f"{expected:,}", (step_dir, field)
        upstream = step_dir


def test_moving_a_threshold_slider_tells_what_would_be_kept(browser, ui: str, runs: Runs):
    browser.get(ui + "/runs/clean/steps/6")
    box = next(
        b
        for b in browser.find_elements(By.CSS_SELECTOR, ".whatif")
        if b.get_attribute("data-rule") == MIN_WORDS
    )
    kept = box.find_element(By.CSS_SELECTOR, ".kept")
    now = count(runs.run("clean"), "steps", GOPHER)
    wait(browser, lambda: kept.text == f"{now:,}")
    slider = box.find_element(By.CSS_SELECTOR, ".slider")
    slider.send_keys(*[Keys.ARROW_LEFT] * 20)  # 50 -> 30, one word a step
    wait(browser, lambda: box.find_element(By.CSS_SELECTOR, ".t").text == "30")
    rerun = count(runs.run("clean-min30"), "steps", GOPHER)  # what min_doc_words=30 really kept
    wait(browser, lambda: kept.text == f"{rerun:,}")
    assert box.find_element(By.CSS_SELECTOR, ".newly-kept").text == f"{rerun - now:,}"
    assert box.find_element(By.CSS_SELECTOR, ".exact").get_attribute("value") == "30"
    sides = [box.find_elements(By.CSS_SELECTOR, f".{side}-side li") for side in ("kept", "dropped")]
    assert all(len(s) == 3 for s in sides)
    assert "min_doc_words: 30" in box.find_element(By.CSS_SELECTOR, ".yaml").text
    assert box.find_element(By.CSS_SELECTOR, ".set").text == "--set gopher_quality.min_doc_words=30"


def test_a_dropped_row_is_followed_to_its_reason(browser, ui: str, runs: Runs):
    browser.get(ui + "/runs/clean/steps/6")
    link = browser.find_element(By.CSS_SELECTOR, "ul.examples a.rowid")
    row_id = int(link.text.split()[-1])
    link.click()
    stage = wait(browser, lambda: browser.find_elements(By.ID, "step-6"))[0]
    reason = next(r["_reason"] for r in rows(runs.run("clean"), "dropped", GOPHER) if r["_id"] == row_id)  # fmt: skip
    assert stage.find_element(By.CSS_SELECTOR, ".status").text == "dropped"
    assert stage.find_element(By.CSS_SELECTOR, ".dropped-reason").text == f"dropped: {reason}"
    assert browser.find_element(By.ID, "step-7").find_element(By.CSS_SELECTOR, ".status").text == "not reached"  # fmt: skip


def test_rows_carrying_html_and_markdown_render_as_text(browser, ui: str):
    browser.get(ui + "/runs/clean/rows?q=pwned&in=all")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a.rowid")]
    assert len(links) == 5
    seen = browser.find_element(By.TAG_NAME, "main").text
    for url in links:
        browser.get(url)
        seen += browser.find_element(By.TAG_NAME, "main").text
        assert browser.execute_script("return window.pwned") is None
        injected = "main img, main script, [onerror], [onmouseover]"
        assert browser.execute_script(f"return document.querySelectorAll('{injected}').length") == 0
    for payload in ("<script>window.pwned = 1</script>", '<img src=x onerror="window.pwned = 2">',
                    "**markdown payload** [click](javascript:window.pwned=4)"):  # fmt: skip
        assert payload in seen


@pytest.mark.slow
def test_the_yaml_editor_shows_compile_problems_as_you_type(browser, ui: str):
    browser.get(ui + "/runs/clean/pipeline")
    state = browser.find_element(By.CSS_SELECTOR, ".editor .state")
    assert state.text == "compiles: 15 steps"
    area = browser.find_element(By.CSS_SELECTOR, ".editor textarea")
    area.send_keys(Keys.CONTROL, Keys.END)
    area.send_keys("\n- op: NoSuchOperator\n")
    wait(browser, lambda: state.text == "1 problem(s)")
    problem = browser.find_element(By.CSS_SELECTOR, ".editor .problems li").text
    assert "step 16" in problem and "unknown operator 'NoSuchOperator'" in problem
    area.send_keys(Keys.BACKSPACE * len("\n- op: NoSuchOperator\n"))
    wait(browser, lambda: state.text == "compiles: 15 steps")
