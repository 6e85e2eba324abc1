"""Headless Chromium (Debian's, installed by scripts/browser.sh) opening a report as a person would."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Opened:
    title: str
    images: int
    broken_images: list[str]  # what each broken image says it is (its alt text, or the start of its source)
    broken_links: list[str]  # links to a file that is not there, or to an anchor that is not on the page
    links: list[str]


class Browser:
    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        found = subprocess.run(
            ["bash", str(ROOT / "scripts" / "browser.sh")], capture_output=True, text=True, check=True
        ).stdout.split()
        chromium, chromedriver = found
        # A folder of its own for the browser's profile and temporary files: a test may leave TMPDIR naming a
        # folder that is gone (a workspace's), and Chromium then cannot start.
        scratch = ROOT / ".auscult" / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="browser-", dir=scratch))
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        options.add_argument(f"--user-data-dir={self.scratch / 'profile'}")
        for argument in (
            "--headless=new",
            "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--window-size=1280,1000",
        ):
            options.add_argument(argument)
        os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
        service = Service(chromedriver, env={**os.environ, "TMPDIR": str(self.scratch)})
        self.driver = webdriver.Chrome(service=service, options=options)

    def open(self, page: Path, screenshot: Path) -> Opened:
        """Open ``page``, wait for its images, save a screenshot of the whole page, and check what it shows."""
        self.driver.get(page.resolve().as_uri())
        self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(() => done(null));"
        )
        images = self.driver.execute_script(
            "return [...document.images].map(i => [i.complete && i.naturalWidth > 0, i.alt || i.src.slice(0, 60)])"
        )
        links = self.driver.execute_script("return [...document.links].map(a => a.href)")
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, min(max(height, 600), 16000))
        self.driver.save_screenshot(str(screenshot))
        broken_links = []
        for link in links:
            parsed = urlparse(link)
            if parsed.scheme == "file" and not Path(unquote(parsed.path)).exists():
                broken_links.append(link)
            elif parsed.fragment and parsed.path == urlparse(page.resolve().as_uri()).path:
                if not self.driver.execute_script("return !!document.getElementById(arguments[0])", parsed.fragment):
                    broken_links.append(link)
            elif parsed.scheme not in ("file", ""):
                broken_links.append(link)  # a report is read offline: it links only to its own files
        return Opened(
            title=self.driver.title,
            images=len(images),
            broken_images=[what for loaded, what in images if not loaded],
            broken_links=broken_links,
            links=links,
        )

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.scratch, ignore_errors=True)
