"""Every refusal of bad input through the CLIs, in one table: the command, its exit status and its
one line. Each row runs the CLI as a user does and checks that it printed exactly one `error:`
line, no traceback, and wrote nothing. stylejax.main runs as a subprocess (its absl flags are
process-global); the other CLIs run in this process, where a traceback fails the test as well.
A new CLI option adds a row here."""

import os
import socket
import subprocess
import sys

import pytest
from PIL import Image

from stylejax import evaluate, explore, project, sample
from tests import official_files as of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(REPO, "experiments", "default.py")
TINY = os.path.join(REPO, "tests", "fixtures", "official", "tiny.pkl")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad inputs the rows name: {file name without its suffix: path}, and busy_port: a port
    this process listens on."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "syntax.py").write_text("def get_config(:\n    pass\n")
    (root / "no_get_config.py").write_text("from stylejax.configs import base_config\n\n\n"
                                           "def other():\n    return base_config()\n")
    (root / "a_file").write_text("not a directory\n")
    Image.new("RGB", (8, 8)).save(root / "face.png")
    of.write(root / "evil.pkl", dict(G_ema=of.Call(of.Global("os", "system"), (f"touch {root}/pwned",))))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield {p.stem: str(p) for p in root.iterdir()} | {"root": str(root),
                                                          "busy_port": str(busy.getsockname()[1])}


def main(*args):
    return ["-m", "stylejax.main", *args]


def sample_cli(mode, *args):
    return ["-m", "stylejax.sample", mode, "--network", TINY, *args]


# (command with {placeholders} for `files` and {out}, exit status, what the one line says)
REFUSALS = [
    (main("--config", "{syntax}", "--workdir", "{out}"), 2,
     "the --config file {syntax} has a syntax error at line 1"),
    (main("--config", "{no_get_config}", "--workdir", "{out}"), 2,
     "the --config file {no_get_config} defines no get_config()"),
    (main("--config", "{root}/missing.py", "--workdir", "{out}"), 2,
     "the --config file {root}/missing.py does not exist"),
    (main("--config", DEFAULT, "--workdir", "{a_file}"), 2,
     "--workdir {a_file} is a file; give a directory"),
    (main("--config", DEFAULT, "--workdir", "{a_file}/run"), 2,
     "cannot create --workdir {a_file}/run: Not a directory"),
    (main("--config", DEFAULT, "--workdir", "{out}", "extra"), 2, "unexpected arguments 'extra'"),
    (main("--config", DEFAULT, "--workdir", "{out}", "--config.resolution=24"), 2,
     "config.resolution: resolution must be a power of two from 8 to 1024, got 24"),
    (main("--config", DEFAULT, "--workdir", "{out}", "--config.restore_step=-1"), 2,
     "config.restore_step must be a saved step (>= 0) or None, got -1"),
    (main("--config", DEFAULT, "--workdir", "{out}", "--config.model.g_architecture=Skip"), 2,
     "config.model.g_architecture='Skip' is not one of skip, orig, resnet"),
    (main("--config", DEFAULT, "--workdir", "{out}", "--config.model.generation=stylegan3"), 2,
     "config.model.generation='stylegan3' is not one of stylegan2, stylegan1"),
    (main("--config", DEFAULT, "--workdir", "{out}", "--config.model.generation=stylegan1",
          "--config.conditional=True"), 2,
     "config.model.generation='stylegan1' builds unconditional networks only"),
    (main("--config", DEFAULT, "--workdir", "{out}", "--config.augment.mode=adaptive"), 2,
     "config.augment.mode='adaptive' is not one of off, fixed, ada"),
    (main("--config", DEFAULT, "--workdir", "{out}", "--config.init_from={evil}"), 2,
     "{evil}: refused: it names the global os.system"),
    (sample_cli("seeds", "--seeds", "0", "--trunc", "nan", "--outdir", "{out}"), 2,
     "'nan' is not a finite number"),
    (sample_cli("grid", "--seeds", "0", "--trunc", "inf", "--outdir", "{out}"), 2,
     "'inf' is not a finite number"),
    (sample_cli("truncation", "--seeds", "0", "--psis", "1,nan", "--outdir", "{out}"), 2,
     "bad list '1,nan': use finite numbers"),
    (sample_cli("mixing", "--row_seeds", "0", "--col_seeds", "1", "--styles", "Coarse", "--outdir", "{out}"),
     2, "--styles 'Coarse' is neither coarse, middle nor fine"),
    (sample_cli("mixing", "--row_seeds", "0", "--col_seeds", "1", "--degree", "1.5", "--outdir", "{out}"),
     2, "degree 1.5 is outside [0, 1]"),
    (sample_cli("blend", "--row_seeds", "0", "--col_seeds", "1", "--degrees", "0,-0.5", "--outdir", "{out}"),
     2, "degree -0.5 is outside [0, 1]"),
    (sample_cli("blend", "--row_seeds", "0", "--col_seeds", "1", "--styles", "hair", "--outdir", "{out}"),
     2, "--styles 'hair' is neither coarse, middle nor fine"),
    (sample_cli("blend", "--row_seeds", "0,2", "--col_seeds", "1", "--outdir", "{out}"),
     2, "blend takes one --row_seeds and one --col_seeds"),
    (sample_cli("video", "--seeds", "0,1", "--format", "avi", "--outdir", "{out}"), 2,
     "value should be one of <mp4|gif>"),
    (sample_cli("video", "--kind", "morph", "--seeds", "0,1", "--outdir", "{out}"), 2,
     "video --kind morph needs --row_seeds and --col_seeds"),
    (sample_cli("video", "--kind", "walk_z", "--seeds", "0,1", "--styles", "fine", "--outdir", "{out}"), 2,
     "--styles does not apply to video --kind walk_z; drop it"),
    (sample_cli("video", "--kind", "truncation", "--seeds", "0", "--trunc", "0.5", "--outdir", "{out}"), 2,
     "--trunc does not apply to video --kind truncation; drop it"),
    (sample_cli("video", "--kind", "blend", "--row_seeds", "0", "--col_seeds", "1", "--styles", "fin",
                "--outdir", "{out}"), 2, "--styles 'fin' is neither coarse, middle nor fine"),
    (["-m", "stylejax.sample", "video", "--workdir", "{root}/missing", "--seeds", "0,1", "--outdir", "{out}"],
     2, "{root}/missing/config.json not found"),
    (sample_cli("seeds", "--seeds", "0", "--outdir", "{a_file}"), 2, "--outdir {a_file} is a file"),
    (sample_cli("seeds", "--seeds", "0", "--step", "2", "--outdir", "{out}"), 2,
     "is a network file, which has no checkpoint steps: drop --step"),
    (["-m", "stylejax.sample", "seeds", "--network", "{evil}", "--seeds", "0", "--outdir", "{out}"], 2,
     "refused: it names the global os.system"),
    (["-m", "stylejax.explore", "--network", TINY, "--port", "{busy_port}"], 2,
     "port {busy_port} on 127.0.0.1 is in use: pick another with --port"),
    (["-m", "stylejax.explore", "--workdir", "{root}/missing"], 2, "{root}/missing/config.json not found"),
    (["-m", "stylejax.explore", "--network", TINY, "--host", "no.such.host.invalid"], 2,
     "cannot serve on no.such.host.invalid:8000"),
    (["-m", "stylejax.evaluate", "--images", "{root}/missing"], 2,
     "--images {root}/missing does not exist"),
    (["-m", "stylejax.evaluate", "--network", TINY, "--metrics", "ppl_wend", "--vgg16",
      "{root}/vgg16.pth"], 2,
     "VGG16 weights file {root}/vgg16.pth does not exist: download torchvision's VGG16 "
     "https://download.pytorch.org/models/vgg16-397923af.pth"),
    (["-m", "stylejax.evaluate", "--network", TINY, "--metrics", "ppl_wend", "--vgg16", "{a_file}"], 2,
     "{a_file} is not a readable torch.save file"),
    (["-m", "stylejax.project", "--network", TINY, "--target", "{root}/face.png", "--outdir", "{out}",
      "--vgg16", "{root}/vgg16.pth"], 2, "VGG16 weights file {root}/vgg16.pth does not exist"),
    (["-m", "stylejax.project", "--network", TINY, "--target", "{a_file}", "--outdir", "{out}"], 2,
     "--target {a_file} is not a readable image"),
    (["-m", "stylejax.project", "--network", TINY, "--target", "{root}/a.png,{root}/b/a.png",
      "--outdir", "{out}"], 2, "two --target files have the same name"),
    (["-m", "stylejax.project", "--network", TINY, "--target", "{root}/face.png", "--outdir", "{out}",
      "--attribute"], 2, "--attribute calibrates with real images: name them with --dataset"),
]


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """The exit status and stderr of `python -m MODULE ARGS...`."""
    module, argv = args[1], args[2:]
    if module == "stylejax.main":
        result = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                                timeout=300, cwd=REPO)
        return result.returncode, result.stderr
    status = {"stylejax.sample": sample.main, "stylejax.evaluate": evaluate.main,
              "stylejax.explore": explore.main, "stylejax.project": project.main}[module](argv)
    return status, capsys.readouterr().err


@pytest.mark.parametrize("command,status,line", REFUSALS,
                         ids=[" ".join(c[1:3] + c[3:][-2:]) for c, _, _ in REFUSALS])
def test_refused_in_one_line(files, tmp_path, monkeypatch, capsys, command, status, line):
    out = str(tmp_path / "out")
    names = {**files, "out": out}
    args = [arg.format(**names) for arg in command]
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("STYLEJAX_DATA_DIR", str(tmp_path / "data"))
    returncode, stderr = run_cli(args, capsys)
    errors = [text for text in stderr.splitlines() if text.startswith("error:")]
    assert returncode == status, stderr[-2000:]
    assert len(errors) == 1 and line.format(**names) in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert not os.path.exists(out) and not os.path.exists(os.path.join(files["root"], "pwned"))
