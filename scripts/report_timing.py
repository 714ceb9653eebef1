#!/usr/bin/env python3
"""Time-to-interactive of an `adainf report` page in headless Chromium (docs/report.md).

  python3 scripts/report_timing.py report.html [REPEATS=5]

Adds a script to a copy of the page that, once the page's own script has run, records the
milliseconds since navigation start at which the runs table was ready (`data-ready`), then
sorts the table by clicking a column header and times that; Chromium's --dump-dom returns the
numbers. Prints the median and the largest over the repeats, and the page's size.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

PROBE = """<script>
(function () {
  const t0 = performance.now();
  document.querySelector('#runs th[data-key="probe"]').click();
  const sort = performance.now() - t0;
  const nav = performance.getEntriesByType("navigation")[0];
  const pre = document.createElement("pre");
  pre.id = "timing";
  pre.textContent = JSON.stringify({ ready: Number(document.body.dataset.ready), sort: sort,
    response_end: nav.responseEnd, rows: document.querySelectorAll("#runs tbody tr").length });
  document.body.appendChild(pre);
})();
</script>"""


def main(page, repeats=5):
    html = open(page, encoding="utf-8").read()
    tmp = tempfile.mkdtemp()
    copy = os.path.join(tmp, "timed.html")
    open(copy, "w", encoding="utf-8").write(html.replace("</body>", PROBE + "\n</body>", 1))
    runs = []
    for i in range(repeats):
        start = time.monotonic()
        out = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--user-data-dir=" + os.path.join(tmp, "profile%d" % i), "--dump-dom", "file://" + copy],
            capture_output=True, text=True, check=True)
        wall = time.monotonic() - start
        m = re.search(r'<pre id="timing">(.*?)</pre>', out.stdout)
        got = json.loads(m.group(1).replace("&quot;", '"'))
        got["chromium_wall_s"] = wall
        runs.append(got)
    print("page: %s, %.2f MB, %d table rows" % (page, os.path.getsize(page) / 1e6, runs[0]["rows"]))
    for key, unit in [("ready", "ms"), ("sort", "ms"), ("response_end", "ms"), ("chromium_wall_s", "s")]:
        values = [r[key] for r in runs]
        print("%-20s median %8.1f %s, max %8.1f %s (n=%d)" % (key, statistics.median(values), unit, max(values), unit, len(values)))


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
