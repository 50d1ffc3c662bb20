"""A headless Chromium for the viewer's tests (playwright), or a clear reason to skip.

The browser is found at ``$SPLATPIX_CHROMIUM``, ``/usr/bin/chromium`` or ``chromium`` on the PATH (Debian's
package; CI installs it in ``.ci/run``); playwright's own downloaded browsers are not needed. WebGL runs on
SwiftShader (software), and the flags keep Chromium off the network (no background connections to refuse).
"""

from __future__ import annotations

import os
import shutil

ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_path() -> str | None:
    for cand in (os.environ.get("SPLATPIX_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; it is in the dev extra)"
    if chromium_path() is None:
        return "no Chromium found (apt-get install chromium, or set SPLATPIX_CHROMIUM=/path/to/chromium)"
    return None


def launch(playwright):
    """A headless Chromium with software WebGL."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=ARGS)
