"""The explorer page in a real browser: headless Chromium moves a slider and the page shows what
`python -m stylejax.sample blend` draws. Skipped where Chromium, its driver or Selenium is missing
(Debian: `apt-get install chromium chromium-driver`; `pip install selenium`)."""

import base64
import io
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from stylejax import explore, sample
from stylejax.checkpoints import load_generator
from tests.test_refusals import TINY

webdriver = pytest.importorskip("selenium.webdriver")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("needs chromium and chromedriver (Debian: chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402 (after the skip)
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

SHOWN = """const done = arguments[arguments.length - 1];
fetch(document.getElementById("image").src).then(r => r.arrayBuffer()).then(buffer => {
  done(btoa(String.fromCharCode(...new Uint8Array(buffer))));
});"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A headless Chromium on the explorer of the tiny official network."""
    trained = load_generator(TINY)
    server = explore.make_server(
        explore.Explorer(trained.G, trained.variables, str(tmp_path_factory.mktemp("saved"))),
        "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=900,500"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(60)
    driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
    yield driver
    driver.quit()
    server.shutdown()
    server.server_close()


def shown(driver) -> np.ndarray:
    """The page's image once its requests have settled."""
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "return !busy && !pending && document.getElementById('image').src !== ''"))
    png = base64.b64decode(driver.execute_async_script(SHOWN))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_moving_a_slider_shows_what_sample_draws(page, tmp_path):
    before = shown(page)
    slider = page.find_element("id", "coarse")
    slider.send_keys(Keys.HOME, *[Keys.ARROW_RIGHT] * 10)  # 10 steps of 0.05, an input event each
    assert slider.get_attribute("value") == "0.5"
    after = shown(page)
    assert (after != before).any()
    assert sample.main(["blend", "--network", TINY, "--outdir", str(tmp_path), "--row_seeds", "0",
                        "--col_seeds", "1", "--styles", "coarse", "--degrees", "0,0.5"]) == 0
    with Image.open(tmp_path / "blend.png") as drawn:
        figure = np.asarray(drawn.convert("RGB"))
    np.testing.assert_array_equal(before, figure[:, :32])  # degree 0: the row seed
    np.testing.assert_array_equal(after, figure[:, 32:])
