"""``resyn demo``: the upload handling (no browser) and the page end to end in headless Chromium.

The browser test needs the ``demo`` extra (Gradio), Selenium and Debian's ``chromium`` +
``chromium-driver`` (``apt-get install chromium chromium-driver``); it is skipped, with the
reason, when any of them is missing.
"""

from __future__ import annotations

import shutil
import socket
import time

import numpy as np
import pytest
from PIL import Image

from resyn.io import write_image
from resyn.restore.demo import DemoBackend, DemoError


def _upload(folder, name="up.png", shape=(32, 40, 3), flat=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    img = np.full(shape, 128, np.uint8) if flat else rng.integers(0, 256, shape, dtype=np.uint8)
    write_image(folder / name, img)
    return folder / name


def test_backend_restores_and_enforces_limits(tmp_path, weights) -> None:
    root = tmp_path / "uploads"
    backend = DemoBackend({"x2": ("sr-x2", weights)}, 10_000, 2000, root.resolve())
    up = _upload(root)
    before, after, target, note = backend.process(str(up), "x2")
    assert before.shape == after.shape == (64, 80, 3)
    assert Image.open(target).size == (80, 64) and "40x32 -> 80x64" in note
    outside = _upload(tmp_path / "elsewhere")
    with pytest.raises(DemoError, match="not uploaded"):
        backend.process(str(outside), "x2")
    with pytest.raises(DemoError, match="not uploaded"):
        backend.process(str(root / ".." / "elsewhere" / "up.png"), "x2")
    big = _upload(root, "big.png", (60, 60, 3), flat=True)  # 3600 pixels > 2000
    with pytest.raises(DemoError, match="pixel limit"):
        backend.process(str(big), "x2")
    (root / "huge.png").write_bytes(b"\0" * 20_000)
    with pytest.raises(DemoError, match="limit is"):
        backend.process(str(root / "huge.png"), "x2")
    (root / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DemoError, match="cannot read"):
        backend.process(str(root / "bad.png"), "x2")
    with pytest.raises(DemoError, match="upload an image"):
        backend.process(None, "x2")
    with pytest.raises(DemoError, match="unknown choice"):
        backend.process(str(up), "x9")


def test_results_are_bounded_and_removed_on_close(tmp_path, weights) -> None:
    # Each upload used to get its own mkdtemp folder that nothing removed.
    root = tmp_path / "uploads"
    backend = DemoBackend({"x2": ("sr-x2", weights)}, 10_000, 2000, root.resolve(), keep_results=2)
    up = _upload(root)
    targets = [backend.process(str(up), "x2")[2] for _ in range(4)]
    results = backend.results_dir
    assert results is not None and results.name.startswith("resyn-demo-")
    assert all(t.parent.parent == results for t in targets)
    assert len({t.parent for t in targets}) == 4  # same upload name, no collisions
    assert sorted(p.parent for p in results.rglob("*.png")) == [t.parent for t in targets[-2:]]
    assert targets[-1].is_file() and not targets[0].exists()
    backend.close()
    assert not results.exists()
    # a given folder is bounded too, but never removed
    given = tmp_path / "given"
    mine = DemoBackend({"x2": ("sr-x2", weights)}, 10_000, 2000, results_dir=given, keep_results=1)
    mine.process(str(up), "x2")
    last = mine.process(str(up), "x2")[2]
    mine.close()
    assert list(given.rglob("*.png")) == [last]


def test_unknown_default_task_is_an_error_naming_the_tasks(tmp_path, weights) -> None:
    from resyn.restore.demo import default_choice

    choices = {"sr-x2 (mine.safetensors)": ("sr-x2", weights), "sr-x4": ("sr-x4", weights)}
    choices["denoise-25"] = ("denoise-25", weights)
    with pytest.raises(ValueError, match=r"--task sr-x3.*known tasks: sr-x2, sr-x4, denoise-25"):
        default_choice(choices, "sr-x3")
    assert default_choice(choices, "sr-x4") == "sr-x4"
    assert default_choice(choices, None, user_weights=True) == "sr-x2 (mine.safetensors)"
    assert default_choice(choices, None) == "sr-x4"  # DEFAULT_TASK without --weights


def test_demo_command_refuses_an_unknown_task(weights, monkeypatch) -> None:
    gr = pytest.importorskip("gradio", reason="the demo extra is not installed")
    from typer.testing import CliRunner

    from resyn.cli.main import app

    def no_launch(*args, **kwargs):
        raise AssertionError("the demo started with an unknown --task")

    monkeypatch.setattr(gr.Blocks, "launch", no_launch)
    res = CliRunner().invoke(app, ["demo", "--task", "sr-x9", "-w", str(weights)])
    assert res.exit_code == 2 and "--task sr-x9" in res.output and "known tasks" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
def test_demo_in_headless_chromium(tmp_path, weights, monkeypatch) -> None:
    pytest.importorskip(
        "gradio", reason="the demo extra is not installed: pip install 'resyn[demo]'"
    )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.skip("headless Chromium not found: apt-get install chromium chromium-driver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from resyn.restore.demo import build_demo

    app = build_demo(weights=[weights], max_upload_bytes=1_000_000, max_pixels=100_000)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,1400",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=driver_bin), options=options
    )
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 60)
        file_input = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]"))
        )
        up = _upload(tmp_path / "local", "photo.png", (32, 40, 3))
        file_input.send_keys(str(up))
        time.sleep(1.0)  # let the upload finish before clicking
        wait.until(ec.element_to_be_clickable((By.ID, "restore"))).click()
        details = wait.until(
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#details textarea").get_attribute("value") or None
            )
        )
        assert "40x32 -> 80x64" in details
        imgs = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#compare img") or None)
        widths = [driver.execute_script("return arguments[0].naturalWidth", i) for i in imgs]
        assert 80 in widths
        link = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#download a") or None)
        assert "photo_sr-x2.png" in link[0].text or "photo_sr-x2" in (
            link[0].get_attribute("href") or ""
        )
        shot = tmp_path / "screenshot.png"
        driver.save_screenshot(str(shot))
        page = np.asarray(Image.open(shot).convert("RGB")).astype(np.float64)
        rect = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
            imgs[0],
        )
        ratio = driver.execute_script("return window.devicePixelRatio") or 1
        x, y, w, h = (int(v * ratio) for v in rect)
        assert w > 20 and h > 20, rect
        crop = page[y : y + h, x : x + w]
        assert crop.size and crop.std() > 20  # the random-noise output is visible, not blank
    finally:
        driver.quit()
        app.close()
