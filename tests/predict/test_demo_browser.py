"""The demo in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) via Selenium.

Opens the page, uploads an image, types a vocabulary, clicks Segment, waits for the overlay, reads the
legend and checks it names exactly the classes the Segmenter finds; saves a screenshot (into the test's
temporary folder, and to ``$MROVSEG_DEMO_SCREENSHOT`` when set). The README's picture was made with

    MROVSEG_DEMO_SCREENSHOT=docs/images/demo.png MROVSEG_DEMO_CKPT=<toy run>/checkpoints/last.ckpt \\
        pytest tests/predict/test_demo_browser.py

Browser and driver: ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (``$MROVSEG_CHROMIUM``,
``$MROVSEG_CHROMEDRIVER`` override); given explicitly, so Selenium never downloads one. Without them, or
without Selenium, the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.predict.conftest import compose_config, toy_image

CHROMIUM = os.environ.get("MROVSEG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MROVSEG_CHROMEDRIVER", "/usr/bin/chromedriver")


def _browser():
    """A headless Chromium driven by Selenium, or a skip saying what is missing."""
    pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (demo extra)")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.skip(f"no browser for the demo test: {path} missing (apt-get install {package})")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1300")
    try:
        return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    except Exception as err:  # a browser that cannot start here is a skip with its reason, not a pass
        pytest.skip(f"headless Chromium could not start: {type(err).__name__}: {err}")


@pytest.fixture(scope="module")
def page(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(url, session, vocabulary)``: the demo served for the browser."""
    pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')
    from mrovseg.demo.app import build_from_config, launch
    from mrovseg.demo.page import free_port

    ckpt = os.environ.get("MROVSEG_DEMO_CKPT") or str(tiny_ckpt)
    out = tmp_path_factory.mktemp("demo-browser")
    overrides = [f"ckpt_path={ckpt}", "device=cpu", f"demo.port={free_port()}", "demo.num_examples=2"]
    cfg = compose_config("demo", overrides, out)
    app, session = build_from_config(cfg)
    _, url, _ = launch(app, cfg.demo, block=False)
    yield url, session
    app.close()


def test_browser_upload_type_segment_read_legend(page, varied_vocab, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from mrovseg.demo.session import example_images

    url, session = page
    image = tmp_path / "photo.png"
    if os.environ.get("MROVSEG_DEMO_CKPT"):  # a trained checkpoint: a 640×480 toy scene, all 31 toy classes
        image = Path(example_images(tmp_path, count=1)[0])
        vocabulary = session.segmenter.text_embeddings("toy")[0]
    else:  # the one-step test checkpoint: two classes it tells apart on this scene
        Image.fromarray(toy_image(0)).save(image)
        vocabulary = varied_vocab
    expected = [e.name for e in session.segmenter.segment(image, vocabulary, return_scores=False).legend()]

    driver = _browser()
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(url)
        upload = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#input-image input[type=file]"))
        )
        upload.send_keys(str(image))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#input-image img")))
        box = driver.find_element(By.CSS_SELECTOR, "#vocabulary textarea")
        box.clear()
        box.send_keys("\n".join(vocabulary))
        driver.find_element(By.CSS_SELECTOR, "#segment").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#overlay img")))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#legend .legend-name")))
        legend = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#legend .legend-name")]
        assert legend == expected
        assert "Segmented a" in driver.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute(
            "value"
        )
        shot = tmp_path / "demo.png"
        assert driver.save_screenshot(str(shot))
        assert Image.open(shot).size[0] >= 1000
        if os.environ.get("MROVSEG_DEMO_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["MROVSEG_DEMO_SCREENSHOT"])
    finally:
        driver.quit()
