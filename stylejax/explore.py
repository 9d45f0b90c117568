"""Explore a trained generator in the browser: python -m stylejax.explore (--workdir DIR |
--network FILE.pkl) [--port 8000] [--host 127.0.0.1] [--outdir explore].

A local page with seed pickers for the row and column images, a degree slider per style band
(coarse, middle, fine: how far the row's styles move toward the column's), psi, the noise mode and,
for conditional generators, the class; the image follows the controls, and Save writes it with its
ws (.npz) into --outdir. The page is served by the standard library's http.server (no web
framework to install) on 127.0.0.1 unless --host says otherwise. Each noise mode runs two jitted
programs, the mapping and one image's synthesis (those of stylejax.sample, so the page shows its
images bit for bit), compiled on first use; seeds, degrees, psi and class are their arguments, so
moving a control recompiles nothing.
"""

import errno
import http.server
import io
import json
import math
import os
import sys
import urllib.parse

import numpy as np
from absl import flags
from PIL import Image

from stylejax import cli
from stylejax.checkpoints import load_generator
from stylejax.errors import UsageError
from stylejax.figures import STYLE_GROUPS, Renderer, check_degrees, layer_weights, style_layers
from stylejax.files import write_atomically
from stylejax.host_memory import keep_freed_host_memory
from stylejax.models.synthesis import NOISE_MODES
from stylejax.sampling import SEED_LIMIT, save_png
from stylejax.steps import parse_step

FLAGS = flags.FlagValues()
cli.define_generator_source(FLAGS)
flags.DEFINE_string("step", None, "checkpoint step, or best (default: the latest)", flag_values=FLAGS)
flags.DEFINE_string("host", "127.0.0.1", "address to serve on (default: this machine only)",
                    flag_values=FLAGS)
flags.DEFINE_integer("port", 8000, "port to serve on (0: any free one)", lower_bound=0,
                     upper_bound=65535, flag_values=FLAGS)
flags.DEFINE_string("outdir", "explore", "where Save writes the image and its ws", flag_values=FLAGS)
flags.DEFINE_integer("trunc_cutoff", None, "truncate only the first N ws (default: all)",
                     flag_values=FLAGS)


class Explorer:
    """The page's state-free back end: settings (a dict of query values) to an image and its ws."""

    def __init__(self, G, variables, outdir: str, cutoff: int | None = None):
        self.G, self.variables, self.outdir, self.cutoff = G, variables, outdir, cutoff
        self.bands = {name: style_layers(name, G.num_ws) for name in STYLE_GROUPS
                      if STYLE_GROUPS[name][0] < G.num_ws}
        self.renderers = {}
        self.renderer("const")  # checks the cutoff now, not on a request

    def renderer(self, noise_mode: str) -> Renderer:
        if noise_mode not in self.renderers:
            if noise_mode not in NOISE_MODES:
                raise UsageError(f"noise {noise_mode!r} is not one of {', '.join(NOISE_MODES)}")
            self.renderers[noise_mode] = Renderer(
                self.G, self.variables, noise_mode=noise_mode, cutoff=self.cutoff,
                class_index=0 if self.G.c_dim else None)
        return self.renderers[noise_mode]

    def info(self) -> dict:
        return {"resolution": self.G.resolution, "num_ws": self.G.num_ws, "c_dim": self.G.c_dim,
                "bands": {name: [min(layers), max(layers)] for name, layers in self.bands.items()},
                "noise_modes": list(NOISE_MODES)}

    def render(self, query: dict[str, str]) -> tuple[np.ndarray, np.ndarray, dict]:
        """(image, ws, the settings read) for a query: row, col, psi, noise, class (of a conditional
        generator; 0 when left out), one degree per band."""
        try:
            settings = {"row": int(query.get("row", 0)), "col": int(query.get("col", 1)),
                        "psi": float(query.get("psi", 1)), "noise": query.get("noise", "const"),
                        "class": int(query["class"]) if "class" in query else None,
                        **{band: float(query.get(band, 0)) for band in self.bands}}
        except ValueError as e:
            raise UsageError(f"bad settings {query}: {e}") from None
        if not all(0 <= settings[seed] < SEED_LIMIT for seed in ("row", "col")):
            raise UsageError(f"seeds are 0..{SEED_LIMIT - 1}, got {settings['row']}, {settings['col']}")
        if not math.isfinite(settings["psi"]):
            raise UsageError(f"psi must be a finite number, got {settings['psi']}")
        degrees = [(self.bands[band], settings[band]) for band in self.bands]
        check_degrees([degree for _, degree in degrees])
        image, ws = self.renderer(settings["noise"]).seeds_blended(
            settings["row"], settings["col"], layer_weights(self.G.num_ws, degrees), settings["psi"],
            settings["class"])
        return image, ws, settings

    def save(self, query: dict[str, str]) -> list[str]:
        """Writes the query's image (PNG) and its ws with the settings (.npz); returns the paths."""
        image, ws, settings = self.render(query)
        os.makedirs(self.outdir, exist_ok=True)
        name = "-".join(f"{k}{v}" for k, v in settings.items() if v is not None)
        paths = [os.path.join(self.outdir, f"{name}.{ext}") for ext in ("png", "npz")]
        save_png(image, paths[0])
        write_atomically(paths[1], lambda f: np.savez(
            f, ws=ws, **{k: np.asarray(v) for k, v in settings.items() if v is not None}))
        return paths


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out, format="PNG")
    return out.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    """GET / (the page), /info (JSON), /image?settings (PNG); POST /save?settings (JSON paths)."""

    explorer: Explorer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/":
            self._reply(200, "text/html; charset=utf-8", PAGE.encode())
        elif url.path == "/info":
            self._reply(200, "application/json", json.dumps(self.explorer.info()).encode())
        elif url.path == "/image":
            self._answer(lambda: ("image/png", png_bytes(self.explorer.render(query)[0])))
        else:
            self._reply(404, "text/plain", b"not found")

    def do_POST(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path != "/save":
            self._reply(404, "text/plain", b"not found")
            return
        self._answer(lambda: ("application/json", json.dumps(self.explorer.save(query)).encode()))

    def _answer(self, make) -> None:
        try:
            content_type, body = make()
        except UsageError as e:  # bad settings in a hand-made URL: the page never sends them
            self._reply(400, "text/plain", str(e).encode())
            return
        self._reply(200, content_type, body)

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        pass  # a line per slider move would drown the terminal


def make_server(explorer: Explorer, host: str, port: int) -> http.server.HTTPServer:
    """The page's server, bound (port 0: a free one); one request at a time, as the device is one."""
    handler = type("ExplorerHandler", (Handler,), {"explorer": explorer})
    try:
        return http.server.HTTPServer((host, port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use: pick another with --port, or "
                             "--port 0 for any free one") from None
        raise UsageError(f"cannot serve on {host}:{port}: {e.strerror}; check --host and --port") \
            from None


def explore(positional: list[str]) -> None:
    """Loads the generator, binds the port, then serves until Ctrl-C."""
    if positional:
        raise UsageError(f"unexpected arguments {' '.join(positional)!r}")
    args = FLAGS
    trained = load_generator(args.workdir or args.network, parse_step(args.step))
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UsageError(f"--outdir {args.outdir} is a file; give a directory (made on the first Save)")
    explorer = Explorer(trained.G, trained.variables, args.outdir, args.trunc_cutoff)
    server = make_server(explorer, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving {trained.G.resolution}x{trained.G.resolution} generator on http://{host}:{port}/ "
          "(Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    """The CLI on `argv` (sys.argv[1:] when None); returns the exit status."""
    cli.quiet_orbax()
    return cli.run(explore, FLAGS, __doc__, ["stylejax.explore", *(sys.argv[1:] if argv is None else argv)])


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>stylejax explorer</title>
<style>
 body { font-family: sans-serif; margin: 1.5em; display: flex; gap: 2em; }
 #controls { display: grid; grid-template-columns: max-content 16em 3em; gap: .5em 1em;
             align-items: center; align-content: start; }
 #image { width: 384px; height: 384px; image-rendering: pixelated; background: #888; }
 #status { color: #666; min-height: 1.2em; grid-column: 1 / 4; }
</style></head>
<body>
<div><img id="image" alt="the blended image"></div>
<div id="controls">
 <label for="row">row seed</label><input id="row" type="number" min="0" value="0"><span></span>
 <label for="col">column seed</label><input id="col" type="number" min="0" value="1"><span></span>
 <span id="bands" style="display: contents"></span>
 <label for="psi">psi</label><input id="psi" type="range" min="0" max="1.5" step="0.05" value="1">
 <output for="psi"></output>
 <label for="noise">noise</label><select id="noise"></select><span></span>
 <label for="class" class="cond">class</label><input id="class" class="cond" type="number" min="0"
   value="0"><span class="cond"></span>
 <button id="save">Save image and ws</button><span></span><span></span>
 <div id="status"></div>
</div>
<script>
const $ = (id) => document.getElementById(id);
let info, busy = false, pending = false;
function settings() {
  const q = new URLSearchParams();
  for (const el of document.querySelectorAll("#controls input, #controls select"))
    if (!(el.classList.contains("cond") && !info.c_dim)) q.set(el.id, el.value);
  return q.toString();
}
async function update() {  // one request in flight; the latest settings follow it
  if (busy) { pending = true; return; }
  busy = true;
  const started = performance.now();
  const reply = await fetch("/image?" + settings());
  if (reply.ok) {
    $("image").src = URL.createObjectURL(await reply.blob());
    $("status").textContent = Math.round(performance.now() - started) + " ms";
  } else $("status").textContent = await reply.text();
  busy = false;
  if (pending) { pending = false; update(); }
}
async function start() {
  info = await (await fetch("/info")).json();
  for (const [band, [lo, hi]] of Object.entries(info.bands))
    $("bands").insertAdjacentHTML("beforeend",
      `<label for="${band}">${band} (ws ${lo}-${hi})</label>` +
      `<input id="${band}" type="range" min="0" max="1" step="0.05" value="0">` +
      `<output for="${band}"></output>`);
  for (const mode of info.noise_modes) $("noise").add(new Option(mode, mode));
  $("noise").value = "const";
  if (!info.c_dim) for (const el of document.querySelectorAll(".cond")) el.style.display = "none";
  else $("class").max = info.c_dim - 1;
  for (const el of document.querySelectorAll("#controls input, #controls select")) {
    el.addEventListener("input", () => {
      if (el.nextElementSibling && el.nextElementSibling.tagName === "OUTPUT")
        el.nextElementSibling.value = el.value;
      update();
    });
    if (el.nextElementSibling && el.nextElementSibling.tagName === "OUTPUT")
      el.nextElementSibling.value = el.value;
  }
  $("save").addEventListener("click", async () => {
    const reply = await fetch("/save?" + settings(), {method: "POST"});
    $("status").textContent = reply.ok ? "saved " + (await reply.json()).join(", ") : await reply.text();
  });
  update();
}
start();
</script></body></html>
"""


if __name__ == "__main__":
    keep_freed_host_memory()
    sys.exit(main())
