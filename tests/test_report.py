"""`motiongrid report` and `motiongrid export` on a synthetic run (real Store, real mp4s), plus
the HTML opened in headless Chromium."""
from __future__ import annotations

import base64
import fcntl
import json
import math
import os
import re
import select
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from synthetic_run import CLIPS, XSS, make_run

from motiongrid.bench.cli import main
from motiongrid.reports.aggregate import aggregate, paired_differences, pick_headline, pick_text_alignment
from motiongrid.reports.data import cell_value, load_run
from motiongrid.reports.export import export_frame
from motiongrid.reports.formatting import fmt, md_escape
from motiongrid.reports.stats import bootstrap_mean

FAILED = ("static", "circle_down", 1)
N_FIGURES = 2 + 1 + 1 + len(CLIPS)  # sweeps (k, guidance_weight), trade-off, heatmap, previews


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run", fail={FAILED})


@pytest.fixture(scope="module")
def report(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    return out


def test_commands_registered():
    from motiongrid.bench.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"report", "compare", "export"} <= set(commands)


def test_user_text_is_escaped(report):
    html = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    assert XSS not in html
    # two scripts, both ours: the cell browser's data block and its code (allowed by hash in the CSP)
    assert re.findall(r"<script[^>]*>", html) == ['<script type="application/json" id="cells-data">', "<script>"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the clip id and prompt, as text
    # raw only inside the fenced config block, where Markdown shows it as code
    outside_code = re.sub(r"(?ms)^(`{3,})json\n.*?^\1$", "", md)
    assert "```json" in md and XSS not in outside_code
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "\\*markdown\\* \\| pipes" in md  # a prompt cannot open emphasis or split a table row


def test_html_is_self_contained(report):
    html = (report / "report.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == N_FIGURES
    assert all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in srcs)
    assert not re.search(r'(src|href)="(https?:|//|file:)', html)
    gifs = [s for s in srcs if s.startswith("data:image/gif")]
    assert len(gifs) == len(CLIPS)
    import io

    from PIL import Image
    gif = Image.open(io.BytesIO(base64.b64decode(gifs[0].split(",", 1)[1])))
    assert gif.n_frames == 8  # animated: every frame of the clip
    # the Markdown links the same figures, written beside it
    for link in re.findall(r"\]\((figures/[^)]+)\)", (report / "report.md").read_text()):
        assert (report / link).stat().st_size > 0


def test_summary_content(report, run_dir):
    html = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    # headline first, arrows from run.json, unavailable metric with its fix command
    assert "headline metric <strong>motion_fidelity.symmetric ↑</strong>" in html
    assert re.search(r"fid <span class=\"arrow\">↓</span>", html)
    assert "motiongrid weights fetch lpips-alexnet" in html and "motiongrid weights fetch lpips-alexnet" in md
    # diagnostics of dict metrics are not score columns
    assert "n_generated" not in md.split("## Resources")[0] and "fid.unstable" not in html.split("Summary")[1][:3000]
    assert "flagged unstable" in html
    # failed cell with its reason; provenance
    assert "CUDA out of memory" in html and "5/6" in html
    assert "0123456789abcdef" in html and "configs/x.toml" in md
    # the numbers are aggregate()'s
    data = load_run(run_dir)
    summ = aggregate(data.rows, ["motion_fidelity.symmetric"]).set_index("label")
    lb = "motionclone(k=4,guidance_weight=2000)"
    vals = [cell_value(r, "motion_fidelity.symmetric") for r in data.rows if r["label"] == lb]
    assert summ.at[lb, "mean"] == pytest.approx(np.mean(vals))
    assert summ.at[lb, "lo"] < summ.at[lb, "mean"] < summ.at[lb, "hi"]
    assert f"{summ.at[lb, 'mean']:.4g}" in md
    # an oracle (a copy of the reference) is marked and never ranked best, however high its values;
    # the best non-oracle label is bolded instead (degenerate/inf CI omitted)
    assert "| reference (oracle) | 6/6 | 1 | ∞ |" in md
    best_mf = max(v for lb, v in summ["mean"].items() if lb not in ("reference", "static"))
    assert f"**{best_mf:.4g}**" in md and "(oracle)" in html


def test_pickers_and_bootstrap(run_dir):
    data = load_run(run_dir)
    assert pick_headline(data) == "motion_fidelity.symmetric"
    assert pick_text_alignment(data) == "clip_text"
    assert "fid.unstable" in data.diagnostic_keys and "fid.unstable" not in data.metric_keys
    a, b = bootstrap_mean([1.0, 2.0, 3.0, 4.0]), bootstrap_mean([1.0, 2.0, 3.0, 4.0])
    assert a == b and a.mean == 2.5 and 1.0 <= a.lo < 2.5 < a.hi <= 4.0  # seeded
    assert math.isnan(bootstrap_mean([2.0]).lo)
    inf = bootstrap_mean([math.inf, 3.0])
    assert inf.mean == math.inf and not inf.has_ci
    assert bootstrap_mean([None, math.nan]).n == 0


def test_tradeoff_skipped_with_reason(tmp_path):
    run = make_run(tmp_path / "run", videos=False,
                   unavailable={"clip_text": "unavailable: run `motiongrid weights fetch open-clip`"})
    assert main(["report", str(run), "--previews", "0"]) == 0
    html = (run / "report" / "report.html").read_text()
    assert "Skipped: text alignment is unavailable (clip_text: unavailable: run" in html
    assert "no reference video saved" not in html  # --previews 0
    assert len(re.findall(r"<img ", html)) == 3  # two sweeps + heatmap


def test_missing_videos_become_placeholders(tmp_path):
    run = make_run(tmp_path / "run", videos=False)
    assert main(["report", str(run), "--previews", "1", "--metric", "psnr"]) == 0
    html = (run / "report" / "report.html").read_text()
    assert "Per clip: psnr" in html and len(re.findall(r"data:image/gif", html)) == 1


def test_report_errors_name_the_input(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope: run directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no results.sqlite" in capsys.readouterr().err
    run = make_run(tmp_path / "run", videos=False)
    assert main(["report", str(run), "--metric", "bogus"]) == 2
    assert "--metric 'bogus': not a metric of this run" in capsys.readouterr().err
    (run / "run.json").write_text("{not json")
    assert main(["report", str(run)]) == 2
    assert "run.json: not valid JSON" in capsys.readouterr().err


def test_md_escape():
    assert md_escape("a|b\nc *d* _e_ `f` [g](h) <i>") == r"a\|b c \*d\* \_e\_ \`f\` \[g\](h) &lt;i&gt;"


# ---- paired differences vs a baseline -------------------------------------------------------

PAIRED_TITLE = "Difference vs {} (paired by clip and seed, 95% bootstrap CI)"


def _cell(label, clip, seed, value, status="ok"):
    return {"label": label, "clip_id": clip, "seed": seed, "status": status, "metrics": {"m": value}, "timings": {}}


def test_paired_differences_known_values():
    base = {("a", 0): 0.25, ("a", 1): 0.5, ("b", 0): 0.75, ("b", 1): 1.0}
    rows = [_cell("base", c, s, v) for (c, s), v in base.items()]
    rows += [_cell("plus", c, s, v + 0.125) for (c, s), v in base.items()]  # dyadic: exact differences
    rows += [_cell("elsewhere", "z", 0, 9.0)]  # shares no (clip, seed) with the baseline
    rows += [_cell("mixed", "a", 0, 1.25), _cell("mixed", "a", 1, 3.5),  # +1, +3: the only pairs kept
             _cell("mixed", "b", 0, math.inf), _cell("mixed", "b", 1, math.nan),  # non-finite here
             _cell("base", "c", 0, math.inf), _cell("mixed", "c", 0, 1.0),  # non-finite baseline
             _cell("base", "c", 1, None), _cell("mixed", "c", 1, 1.0),  # errored baseline
             _cell("base", "d", 0, 1.0), _cell("mixed", "d", 0, 5.0, status="failed"),
             _cell("base", "d", 1, 1.0, status="failed"), _cell("mixed", "d", 1, 5.0)]
    out = paired_differences(rows, "m", "base")
    assert list(out.columns) == ["label", "metric", "n", "mean", "lo", "hi"]
    out = out.set_index("label")
    assert sorted(out.index) == ["mixed", "plus"]  # no baseline row, no label without pairs
    assert (out.at["plus", "n"], out.at["plus", "mean"], out.at["plus", "lo"], out.at["plus", "hi"]) == (4, 0.125, 0.125, 0.125)
    est = bootstrap_mean([1.0, 3.0])
    assert (out.at["mixed", "n"], out.at["mixed", "mean"]) == (2, 2.0)
    assert (out.at["mixed", "lo"], out.at["mixed", "hi"]) == (est.lo, est.hi) and est.lo < est.hi
    assert paired_differences(rows, "m", "nobody").empty


@pytest.fixture(scope="module")
def unguided_run(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("unguided") / "run", videos=False, unguided=True)
    assert main(["report", str(run), "--previews", "0"]) == 0
    return run


def _md_section(md: str, title: str) -> list[str]:
    return md.split(title, 1)[1].split("\n## ", 1)[0].splitlines()


def test_paired_section_defaults_to_unguided(unguided_run):
    md = (unguided_run / "report" / "report.md").read_text()
    html = (unguided_run / "report" / "report.html").read_text()
    title = PAIRED_TITLE.format("unguided")
    assert md.index("## Summary") < md.index(title) < md.index("## Resources")
    cells = [line[2:-2].split(" | ") for line in _md_section(md, title) if line.startswith("| ")]
    rows = {c[0]: c[1:] for c in cells}
    assert "unguided" not in rows and "reference (oracle)" in rows and "static (oracle)" in rows
    # headline first; the numbers are paired_differences()'s; marked when the CI clears 0
    data = load_run(unguided_run)
    d = paired_differences(data.rows, "motion_fidelity.symmetric", "unguided").set_index("label")
    lb = "motionclone(k=4,guidance_weight=2000)"
    assert rows[md_escape(lb)][0] == f"**+{fmt(d.at[lb, 'mean'])}** [{fmt(d.at[lb, 'lo'])}, {fmt(d.at[lb, 'hi'])}] ✓"
    assert rows[md_escape(lb)][-1].endswith("✓")  # fid: lower is better, and it is lower
    assert rows["static (oracle)"][0].startswith("-") and "✓" not in rows["static (oracle)"][0]  # worse
    assert rows["reference (oracle)"][1] == "—"  # psnr=inf has no difference
    # an oracle's gain is never marked as a resolved improvement, however clear
    ref_mf = d.at["reference", "lo"]
    assert ref_mf > 0 and "✓" not in rows["reference (oracle)"][0] and "**" not in rows["reference (oracle)"][0]
    section = html.split('<section id="paired">', 1)[1].split("</section>", 1)[0]
    assert title in section and '<a href="#paired">' in html
    assert 'class="num best headline" title="n=6 pairs"' in section and "✓" in section


def test_paired_section_explicit_baseline_and_errors(run_dir, report, tmp_path, capsys):
    # no unguided label: no section, and nothing else changes
    assert "Difference vs" not in (report / "report.md").read_text()
    assert 'id="paired"' not in (report / "report.html").read_text()
    assert main(["report", str(run_dir), "--out", str(tmp_path), "--baseline", "nonexistent"]) == 2
    assert "--baseline 'nonexistent': not a label of this run (have: reference, static, motionclone(k=1," \
        in capsys.readouterr().err
    assert main(["report", str(run_dir), "--out", str(tmp_path), "--previews", "0", "--baseline", "static"]) == 0
    md = (tmp_path / "report.md").read_text()
    rows = [line for line in _md_section(md, PAIRED_TITLE.format("static")) if line.startswith("| ")]
    assert len(rows) == 2 + 6 and not any(line.startswith("| static |") for line in rows)
    assert 'title="n=5 pairs"' in (tmp_path / "report.html").read_text()  # static's failed cell has no pair


# ---- export ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trips(run_dir, tmp_path, fmt):
    out = tmp_path / f"cells.{fmt}"
    assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    back = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    frame = export_frame(run_dir)
    assert len(back) == len(frame) == 48 and list(back.columns) == list(frame.columns)
    for col in ("motion_fidelity.symmetric", "psnr", "time.generate", "param.k", "param.guidance_weight"):
        np.testing.assert_allclose(back[col].to_numpy(float), frame[col].to_numpy(float), equal_nan=True)
    for col in ("label", "clip_id", "status", "params"):
        assert back[col].tolist() == frame[col].tolist()
    assert np.isinf(back.loc[back["label"] == "reference", "psnr"]).all()
    assert back.loc[back["status"] == "failed", "reason"].str.contains("CUDA out of memory").all()
    assert json.loads(back["params"].iloc[-1]) == json.loads(frame["params"].iloc[-1])


def test_export_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "csv"]) == 2
    assert "no results.sqlite" in capsys.readouterr().err


# ---- the page in a real browser -------------------------------------------------------------

class Chromium:
    """Headless Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: the
    browser reads NUL-separated JSON commands on fd 3 and answers on fd 4). Needs no package
    beyond the browser and opens no port."""

    def __init__(self, exe: str, profile: str, timeout: float = 60.0):
        self.timeout, self.events, self._id, self._buf = timeout, [], 0, b""
        child_in, self._w = os.pipe()
        self._r, child_out = os.pipe()
        # Lift the child's ends above 9 so dup2 onto 3/4 can neither clobber one with the other
        # nor be a no-op (dup2(3, 3) would leave the fd close-on-exec).
        hi_in = fcntl.fcntl(child_in, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_out = fcntl.fcntl(child_out, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(child_in)
        os.close(child_out)

        def wire_fds():  # in the child, before exec
            os.dup2(hi_in, 3)
            os.dup2(hi_out, 4)

        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--mute-audio", "--hide-scrollbars", f"--user-data-dir={profile}",
                "--remote-debugging-pipe", "about:blank"]
        # close_fds=False keeps the dup2'd 3/4; every fd Python opened is close-on-exec anyway.
        self.proc = subprocess.Popen(args, preexec_fn=wire_fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(hi_in)
        os.close(hi_out)

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit code {self.proc.poll()})")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._next(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._next(deadline))
        return next(e for e in self.events if e.get("method") == method)

    def evaluate(self, expr: str, session: str):
        return self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)["result"]["value"]

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_html_in_headless_chromium(report, tmp_path):
    html = (report / "report.html").resolve()
    browser = Chromium(_chromium(), str(tmp_path / "profile"))
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=s)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
        browser.send("Page.navigate", {"url": html.as_uri()}, session=s)
        browser.wait_event("Page.loadEventFired")

        images = browser.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])", s)
        assert len(images) == N_FIGURES
        assert all(done and width > 0 for done, width, _ in images), images
        assert browser.evaluate("document.scripts.length", s) == 2  # the cell browser's data and code
        assert XSS in browser.evaluate("document.body.innerText", s)  # shown as text

        height = browser.evaluate("document.documentElement.scrollHeight", s)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": min(height, 16000), "deviceScaleFactor": 1, "mobile": False}, session=s)
        shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"}, session=s)["data"])
    finally:
        browser.close()

    problems = [e for e in browser.events
                if e.get("method") in ("Runtime.exceptionThrown", "Page.javascriptDialogOpening")
                or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
                or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert not problems, problems
    path = tmp_path / "report.png"
    path.write_bytes(shot)
    if os.environ.get("MOTIONGRID_SCREENSHOT"):  # to keep one for a person to look at
        shutil.copy(path, os.environ["MOTIONGRID_SCREENSHOT"])
    from PIL import Image
    with Image.open(path) as im:
        assert im.size == (1280, min(height, 16000)) and height > 2000
        # not a blank page: the header band is dark, the body light
        assert im.getpixel((10, 10))[0] < 80 and im.getpixel((10, im.size[1] - 10))[0] > 200
