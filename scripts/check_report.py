"""Open a report in headless Chromium and check that it renders with all its images.

Copies ``index.html`` beside itself with a small script appended that, once the page has loaded,
writes how many images there are and how many decoded (``naturalWidth > 0``) into the DOM;
Chromium's ``--dump-dom`` prints it. Also saves a full-page screenshot.

    .venv/bin/python scripts/check_report.py W/reports/<run_id>/index.html [--screenshot out.png]
Exit 0 when every image rendered, 1 otherwise. Needs Debian's chromium (/usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement('div'); d.id = 'render-check';
  d.textContent = 'IMAGES ' + imgs.length + ' RENDERED ' + ok;
  document.body.appendChild(d);
});
</script>"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html")
    ap.add_argument("--screenshot", default=None)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    page = Path(args.html).resolve()
    probe = page.with_name(".render-check.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            out = subprocess.run([args.chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probe.as_uri()],
                                 capture_output=True, text=True, timeout=120)
            if args.screenshot:
                subprocess.run([args.chromium, *FLAGS, f"--user-data-dir={profile}", "--window-size=1300,6000",
                                f"--screenshot={Path(args.screenshot).resolve()}", page.as_uri()],
                               capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink(missing_ok=True)
    m = re.search(r"IMAGES (\d+) RENDERED (\d+)", out.stdout)
    if not m:
        print(f"no render check in Chromium's DOM (exit {out.returncode}): {out.stderr[-500:]}")
        return 1
    n, ok = int(m.group(1)), int(m.group(2))
    print(f"{page}: {ok} of {n} images rendered")
    return 0 if n > 0 and ok == n else 1


if __name__ == "__main__":
    sys.exit(main())
