r"""Checks a static page in a headless Chromium: its players load, its images render.

Writes a copy of the page beside it with a script that, a few seconds after
the page has loaded, puts each <audio>'s readyState, duration and error and
each <img>'s natural size into the DOM, which Chromium's --dump-dom prints (the
copy is then removed). A player passes with its metadata loaded (readyState
>= 1), a duration above zero and no error; an image with a natural width above
zero. The result goes to `browser_check.md` beside the page; --screenshot
takes a picture of the page itself (in 256 colours, to keep it small).

Needs Chromium (Debian: `apt-get install -y chromium`); CI has none, so this
is a manual step, rerun after the page is (experiments/results/listen/).

Run (from the repository root):
  python -m experiments.browser_check \
      --page=experiments/results/listen/index.html \
      --screenshot=experiments/results/listen/screenshot.png
"""

import html
import json
import os
import re
import subprocess
import sys
import tempfile

from absl import app
from absl import flags
from PIL import Image

from experiments import common

FLAGS = flags.FLAGS
_PROBE = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var rows = Array.from(document.querySelectorAll("audio")).map(function (a) {
      return {kind: "audio", src: a.getAttribute("src"), ready: a.readyState,
              duration: a.duration, error: a.error ? a.error.code : null};
    }).concat(Array.from(document.images).map(function (i) {
      return {kind: "img", src: i.getAttribute("src"), width: i.naturalWidth,
              height: i.naturalHeight};
    }));
    var out = document.createElement("pre");
    out.id = "browser-check";
    out.textContent = JSON.stringify(rows);
    document.body.appendChild(out);
  }, 5000);
});
</script>
"""
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=20000",
)


def define_flags():
    flags.DEFINE_string("page", None, "The HTML page to check.")
    flags.DEFINE_string("screenshot", "", "PNG of the page ('' = none).")
    flags.DEFINE_string("window_size", "1280,2800", "Width,height of the screenshot.")
    flags.DEFINE_string("chromium", "chromium", "The Chromium executable.")
    flags.mark_flag_as_required("page")


def _chromium(chromium, *args):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium, *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout


def probe(page, chromium="chromium"):
    """[dict] per <audio> and <img> of `page`, as Chromium loaded them."""
    page = os.path.abspath(page)
    with open(page, encoding="utf-8") as f:
        text = f.read()
    copy = os.path.join(os.path.dirname(page), ".browser_check.html")
    with open(copy, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", _PROBE + "</body>"))
    try:
        dom = _chromium(chromium, "--dump-dom", f"file://{copy}")
    finally:
        os.remove(copy)
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError(f"{page}: the probe did not run in Chromium")
    return json.loads(html.unescape(found.group(1)))


def failures(rows):
    """The rows of `probe` whose player or image did not load."""
    bad = []
    for r in rows:
        if r["kind"] == "audio":
            ok = r["ready"] >= 1 and r["error"] is None and (r["duration"] or 0) > 0
        else:
            ok = r["width"] > 0
        if not ok:
            bad.append(r)
    return bad


def _shrink(png):
    """Rewrites a screenshot with a 256-colour palette: about half the bytes,
    for a picture that is committed."""
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(256)
    small.save(png, optimize=True)


def record(page, rows, bad, chromium, command):
    """browser_check.md beside the page: what was checked, with what, and how."""
    players = sum(r["kind"] == "audio" for r in rows)
    version = _chromium(chromium, "--version").strip()
    lines = [
        "# Browser check",
        "",
        *common.provenance(command),
        f"- Browser: {version}, headless.",
        f"- Result: {players} players and {len(rows) - players} images; "
        f"{len(bad)} did not load.",
        "",
        "| element | file | loaded |",
        "|---|---|---|",
    ]
    for r in rows:
        state = (
            f"readyState {r['ready']}, {r['duration']:.2f} s"
            if r["kind"] == "audio" and r["duration"]
            else f"{r.get('width')} x {r.get('height')} px"
        )
        lines.append(f"| {r['kind']} | {r['src']} | {state} |")
    common.write_text(
        os.path.join(os.path.dirname(page), "browser_check.md"), "\n".join(lines) + "\n"
    )


def main(argv):
    del argv
    rows = probe(FLAGS.page, FLAGS.chromium)
    bad = failures(rows)
    players = sum(r["kind"] == "audio" for r in rows)
    print(
        f"{FLAGS.page}: {players} players, {len(rows) - players} images, "
        f"{len(bad)} not loaded"
    )
    for r in bad:
        print("not loaded: " + json.dumps(r))
    record(FLAGS.page, rows, bad, FLAGS.chromium, common.command_line("browser_check"))
    if FLAGS.screenshot:
        _chromium(
            FLAGS.chromium,
            f"--screenshot={os.path.abspath(FLAGS.screenshot)}",
            f"--window-size={FLAGS.window_size}",
            f"file://{os.path.abspath(FLAGS.page)}",
        )
        _shrink(FLAGS.screenshot)
        print(f"screenshot: {FLAGS.screenshot}")
    sys.exit(1 if bad or not rows else 0)


if __name__ == "__main__":
    define_flags()
    app.run(main)
