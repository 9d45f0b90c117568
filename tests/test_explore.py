"""python -m stylejax.explore: the page's server over HTTP, against `stylejax.sample`'s pictures."""

import json
import threading
import urllib.request

import jax
import numpy as np
import pytest
from PIL import Image

from stylejax import explore, sample
from stylejax.checkpoints import load_generator
from tests.test_refusals import TINY


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The explorer of the tiny official network, served on a free port in a thread: its URL."""
    trained = load_generator(TINY)
    outdir = tmp_path_factory.mktemp("saved")
    explorer = explore.Explorer(trained.G, trained.variables, str(outdir))
    httpd = explore.make_server(explorer, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", explorer
    httpd.shutdown()
    httpd.server_close()


def get(url: str, method: str = "GET") -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as reply:
        return reply.read()


def image(url: str, **settings) -> np.ndarray:
    query = "&".join(f"{k}={v}" for k, v in settings.items())
    with Image.open(urllib.request.urlopen(f"{url}/image?{query}", timeout=60)) as picture:
        return np.asarray(picture.convert("RGB"))


def test_the_page_draws_what_sample_draws_and_compiles_once(server, tmp_path, caplog):
    url = server[0]
    assert b"<input id=\"psi\" type=\"range\"" in get(url + "/")
    info = json.loads(get(url + "/info"))
    assert info["bands"] == {"coarse": [0, 3], "middle": [4, 7]} and info["c_dim"] == 0  # 32x32: 8 ws
    image(url, row=3, col=5)  # compiles
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        caplog.clear()
        moved = [image(url, row=3, col=5, coarse=0.5, psi=0.7), image(url, row=4, col=9, middle=1),
                 image(url, row=3, col=5, coarse=0.5, middle=0.25, psi=0.3)]
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()], caplog.text
    assert (moved[0] != moved[2]).any() and (moved[0] != moved[1]).any()
    assert sample.main(["blend", "--network", TINY, "--outdir", str(tmp_path), "--row_seeds", "3",
                        "--col_seeds", "5", "--styles", "coarse", "--degrees", "0.5", "--trunc", "0.7"]) == 0
    with Image.open(tmp_path / "blend.png") as drawn:
        np.testing.assert_array_equal(np.asarray(drawn.convert("RGB")), moved[0])


def test_save_writes_the_image_and_its_ws(server):
    url, explorer = server
    png, npz = json.loads(get(f"{url}/save?row=3&col=5&coarse=0.5&middle=1&psi=0.7", "POST"))
    with Image.open(png) as saved:
        np.testing.assert_array_equal(np.asarray(saved.convert("RGB")),
                                      image(url, row=3, col=5, coarse=0.5, middle=1, psi=0.7))
    row, col = explorer.renderer("const").styles([3, 5], 0.7)
    by_hand = np.concatenate([(row[:4] + col[:4]) / 2, col[4:]])  # coarse halfway, middle copied
    with np.load(npz) as data:
        assert (int(data["row"]), int(data["col"]), float(data["psi"]), str(data["noise"])) == \
            (3, 5, 0.7, "const")
        np.testing.assert_allclose(data["ws"], by_hand, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(data["ws"][4:], col[4:])


@pytest.mark.parametrize("query, reason", [("row=3&coarse=1.5", "degree 1.5 is outside [0, 1]"),
                                           ("row=-1", "seeds are 0..4294967295, got -1, 1"),
                                           ("psi=nan", "psi must be a finite number, got nan"),
                                           ("noise=loud", "noise 'loud' is not one of"),
                                           ("row=x", "bad settings")])
def test_bad_settings_in_a_url_are_a_400_with_the_reason(server, query, reason):
    with pytest.raises(urllib.error.HTTPError) as error:
        get(f"{server[0]}/image?{query}")
    assert error.value.code == 400 and reason in error.value.read().decode()
