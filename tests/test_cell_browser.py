"""The report's cell browser, driven in a real Chromium by Selenium: sort, filter, open a cell,
play its videos in sync, step frames, see a failed cell's reason, the paired difference."""
from __future__ import annotations

import json
import re
import shutil
import time

import pytest
from synthetic_run import make_run

from motiongrid.bench.cli import main
from motiongrid.reports.data import cell_value, load_run

FAILED = ("static", "circle_down", 1)
BASELINE = "static"
LABEL = "motionclone(k=2,guidance_weight=1000)"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium and chromedriver are not installed (Debian: apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("run") / "run", fail={FAILED})
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(run_dir), "--out", str(out), "--previews", "0", "--baseline", BASELINE]) == 0
    return run_dir, out


def test_page_data_is_escaped_and_self_contained(report):
    _, out = report
    html = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html  # a clip id cannot close the data block
    data = json.loads(re.search(r'<script type="application/json" id="cells-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["rows"]) == 48 and data["baseline"] == BASELINE
    assert all(v["src"].startswith("data:video/webm;base64,") for v in data["videos"].values())
    assert not (out / "videos").exists()


def test_over_budget_videos_are_linked(report, tmp_path):
    run_dir, _ = report
    assert main(["report", str(run_dir), "--out", str(tmp_path), "--previews", "0", "--embed-mb", "0.01"]) == 0
    html = (tmp_path / "report.html").read_text()
    data = json.loads(re.search(r'id="cells-data">(.*?)</script>', html, re.S).group(1))
    srcs = [v["src"] for v in data["videos"].values()]
    linked = [s for s in srcs if s.startswith("videos/")]
    assert linked and len(linked) < len(srcs)  # the first ones fit, the rest are files beside it
    assert all((tmp_path / s).stat().st_size > 0 for s in linked)
    assert "more (beyond the 0.01 MB budget) are linked" in html


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _column(driver, key: str) -> list:
    vals = driver.execute_script(
        "return Array.from(document.querySelectorAll('#cells-body td[data-key=\"' + arguments[0] + '\"]'))"
        ".map(td => td.getAttribute('data-value'))", key)
    return [None if v == "" else float(v) for v in vals]


def _rows(driver) -> list[list[str]]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#cells-body tr')).map(tr => "
        "Array.from(tr.cells).slice(0, 4).map(td => td.textContent))")


def _videos(driver) -> list[dict]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#p-videos video')).map(v => ({t: v.currentTime, "
        "paused: v.paused, ready: v.readyState, d: v.duration, f: window.motiongridCells.frameOf(v.currentTime)}))")


def _wait(cond, timeout=15.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the page")
        time.sleep(0.05)


def test_browser_sort_filter_open_and_play_in_sync(report, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    run_dir, out = report
    data = load_run(run_dir)
    browser.get((out / "report.html").resolve().as_uri())
    assert len(_rows(browser)) == 48

    # sort by a metric: ascending, then descending on a second click; missing values last
    head = browser.find_element(By.CSS_SELECTOR, '#cells-head th[data-key="psnr"]')
    head.click()
    asc = _column(browser, "psnr")
    present = [v for v in asc if v is not None]
    assert present == sorted(present) and asc[len(present):] == [None] * (len(asc) - len(present))
    head.click()
    desc = [v for v in _column(browser, "psnr") if v is not None]
    assert desc == sorted(present, reverse=True) and desc[0] == float("inf")  # the reference's copy

    # filter to one label; then a metric range within it
    Select(browser.find_element(By.ID, "f-label")).select_by_value(LABEL)
    rows = _rows(browser)
    assert len(rows) == 6 and {r[0] for r in rows} == {LABEL}
    Select(browser.find_element(By.ID, "f-metric")).select_by_value("psnr")
    cut = sorted(v for v in _column(browser, "psnr"))[3]
    browser.find_element(By.ID, "f-min").send_keys(str(cut))
    assert all(v >= cut for v in _column(browser, "psnr")) and len(_rows(browser)) == 3
    browser.find_element(By.ID, "f-min").clear()
    browser.execute_script("document.getElementById('f-min').dispatchEvent(new Event('input'))")
    assert len(_rows(browser)) == 6

    # the paired difference: this cell minus the baseline's cell of the same clip and seed
    browser.find_element(By.ID, "f-delta").click()
    by = {(r["label"], r["clip_id"], r["seed"]): r for r in data.rows}
    shown = dict(zip(((r[1], int(r[2])) for r in _rows(browser)), _column(browser, "psnr")))
    for (clip, seed), d in shown.items():
        base = by.get((BASELINE, clip, seed))
        if base is None or base["status"] != "ok":
            assert d is None  # no pair, no difference
        else:
            assert d == pytest.approx(cell_value(by[(LABEL, clip, seed)], "psnr") - cell_value(base, "psnr"), abs=1e-9)
    browser.find_element(By.ID, "f-delta").click()

    # open a cell with saved videos (seed 0): reference, baseline and the cell side by side
    Select(browser.find_element(By.ID, "f-clip")).select_by_value("square_right")
    row = next(tr for tr in browser.find_elements(By.CSS_SELECTOR, "#cells-body tr")
               if tr.find_elements(By.TAG_NAME, "td")[2].text == "0")
    row.click()
    assert browser.find_element(By.ID, "cell-panel").is_displayed()
    captions = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#p-videos figcaption")]
    assert captions == ["reference", f"baseline: {BASELINE}", LABEL]
    _wait(lambda: len(_videos(browser)) == 3 and all(v["ready"] >= 2 for v in _videos(browser)))
    numbers = browser.find_element(By.ID, "p-numbers").text
    assert "psnr" in numbers and "lpips" in numbers and "unavailable" in numbers

    # knock one video out of step, play: all three play and the leader pulls the others into sync
    browser.execute_script("document.querySelectorAll('#p-videos video')[2].currentTime = 0.6")
    browser.find_element(By.ID, "p-play").click()
    time.sleep(0.4)
    first = _videos(browser)
    time.sleep(0.3)
    second = _videos(browser)
    assert not any(v["paused"] for v in second)
    assert all(a["t"] != b["t"] for a, b in zip(first, second))  # moving (8 frames loop in 1 s)
    fps = 8.0
    lead = second[0]
    for v in second[1:]:
        gap = abs(v["t"] - lead["t"])
        assert min(gap, v["d"] - gap) < 1.0 / fps, second  # within one frame (loop wrap counted)

    # pause: every video on the same frame; a frame step moves all of them by one
    browser.find_element(By.ID, "p-play").click()
    paused = _videos(browser)
    assert all(v["paused"] for v in paused) and len({v["f"] for v in paused}) == 1
    browser.find_element(By.ID, "p-next").click()
    stepped = _videos(browser)
    assert {v["f"] for v in stepped} == {(paused[0]["f"] + 1) % 8}
    assert browser.find_element(By.ID, "p-frame").text == f"frame {stepped[0]['f'] + 1} / 8"
    shot = tmp_path / "cell-browser.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # a failed cell shows its reason where its video would be
    Select(browser.find_element(By.ID, "f-clip")).select_by_value("")
    Select(browser.find_element(By.ID, "f-label")).select_by_value(FAILED[0])
    Select(browser.find_element(By.ID, "f-status")).select_by_value("failed")
    rows = browser.find_elements(By.CSS_SELECTOR, "#cells-body tr")
    assert len(rows) == 1
    rows[0].click()
    assert "CUDA out of memory" in browser.find_element(By.ID, "p-reason").text
    assert "failed: CUDA out of memory" in browser.find_element(By.CSS_SELECTOR, "#p-videos .novideo").text

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
