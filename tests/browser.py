"""A real browser for the login tests: Debian's chromium (installed as root when missing) driven by
Playwright, which downloads no browser of its own. Elsewhere the tests that need it skip with why."""
import importlib.util
import os

from tests import debian
from tests.debian import Unavailable
from tests.script_browser import CHROMIUM


def ensure() -> None:
    """Chromium and the playwright package here; raise Unavailable with why not."""
    if importlib.util.find_spec("playwright") is None:
        raise Unavailable("the playwright package is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        debian.install("chromium")
        if not os.path.exists(CHROMIUM):
            raise Unavailable(f"{CHROMIUM} is still missing after installing chromium")
