"""``worldmodels report`` (issue 17): one self-contained HTML page, opened in a real headless
browser (Debian's chromium through Selenium; ``.ci/run`` installs it), asserting on what
rendered: the tables' numbers and every image decoded with a non-zero size. The screenshot is
kept as ``tests/artifacts/report.png``."""

import json
import shutil
from pathlib import Path

import pytest
from cli_runs import train_debug
from test_compare import _fake_run

from worldmodels.cli import main

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real CartPole run (diagnosed, with an evaluation gif) and PPO/classic seeds."""
    root = tmp_path_factory.mktemp("report")
    real = root / "runs" / "classic_s0"
    assert train_debug(real, ["threads=1"], "--video", str(real / "videos/episode.gif")) == 0
    assert main(["diagnose", "--run-dir", str(real), "--horizon", "3", "--quiet"]) == 0
    for seed, mean in enumerate([400.0, 450.0, 500.0]):
        curve = [(1000, 20.0), (20000 + 1000 * seed, 480.0)]
        _fake_run(root / "runs" / f"ppo_s{seed}", "CartPole-v1", "ppo", seed, mean, curve)
    out = root / "report.html"
    assert main(["report", str(root / "runs"), "--out", str(out)]) == 0
    return out, json.loads((real / "eval.json").read_text())


def test_the_report_is_self_contained(report):
    page = report[0].read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert page.count("data:image/png;base64,") >= 4 and "data:image/gif;base64," in page


needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium and chromedriver not installed"
)


def render(page: Path, screenshot: Path, profile: Path) -> tuple[str, list[list]]:
    """Open ``page`` in headless chromium: the body's text and, per image, (alt, complete,
    natural width, natural height); a full-page screenshot saved to ``screenshot``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1200,3000")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(page.as_uri())
        text = driver.find_element("tag name", "body").text
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth,"
            " i.naturalHeight])"
        )
        screenshot.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return text, images


@needs_browser
def test_the_report_renders_in_a_browser(report, tmp_path):
    out, evaluation = report
    text, images = render(out, ARTIFACTS / "report.png", tmp_path / "profile")
    assert "worldmodels report: 4 runs, 1 env" in text
    assert "450.0 ± 50.0" in text  # ppo's mean ± std over its three seeds
    assert f"{evaluation['mean_return']:.1f}" in text  # the real run's evaluation
    assert f"{evaluation['real_env_steps']:,}" in text
    alts = [alt for alt, *_ in images]
    for needed in ["curves_CartPole-v1", "profile_CartPole-v1", "diagnostics_error_vs_k"]:
        assert needed in alts, alts
    assert "episode" in alts
    for alt, complete, width, height in images:  # every image decoded, none empty
        assert complete and width > 0 and height > 0, alt


DEMO = Path(__file__).parent.parent / "runs" / "demo"


@needs_browser
@pytest.mark.skipif(not (DEMO / "eval.json").exists(), reason="no `make demo` run here")
def test_the_demo_runs_report(tmp_path):
    """After `make demo`: its report renders; the screenshot is the README's
    (tests/artifacts/report-demo.png, copied to docs/report-demo.png)."""
    out = tmp_path / "demo.html"
    assert main(["report", str(DEMO), "--out", str(out)]) == 0
    text, images = render(out, ARTIFACTS / "report-demo.png", tmp_path / "profile")
    evaluation = json.loads((DEMO / "eval.json").read_text())
    assert f"{evaluation['mean_return']:.1f}" in text and "worldmodels report: 1 run" in text
    assert images and all(c and w > 0 and h > 0 for _, c, w, h in images)
