"""A browser for `dispatch login` in the tests, run as $BROWSER with the URL to open.

It does what a person's browser does: loads the issuer's authorization page, submits its login
form, and follows the redirects, the last one to the CLI's local callback. SCRIPT_BROWSER picks
the person: `login` (default), `deny` (presses Cancel), `forge-state` (the callback arrives with
another login's state, as a forged link would), `chromium` (the same login in a real headless
Chromium driven by Playwright). What it saw is appended to SCRIPT_BROWSER_LOG when that is set.
"""
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class Form(HTMLParser):
    """The page's form: where it posts, its fields, and its buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action, self.fields, self.buttons = "", {}, {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.action = attributes.get("action") or ""
        elif tag == "input" and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""
        elif tag == "button" and attributes.get("name"):
            self.buttons[attributes.get("value") or ""] = attributes["name"]


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def open_url(opener, url: str, data: bytes | None = None) -> tuple[int, str, str]:
    """(status, Location, body) of one request, redirects not followed."""
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=30) as answer:
            return answer.status, "", answer.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers.get("Location") or "", answer.read().decode()


def script(url: str, mode: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirects())
    status, _, page = open_url(opener, url)
    if status != 200:
        return f"authorization page answered {status}: {page}"
    form = Form()
    form.feed(page)
    pressed = "deny" if mode == "deny" else "allow"
    data = urllib.parse.urlencode({**form.fields, form.buttons[pressed]: pressed}).encode()
    status, location, page = open_url(opener, urllib.parse.urljoin(url, form.action), data)
    for _ in range(5):  # a browser follows redirects, turning a POST into a GET
        if status not in (301, 302, 303, 307) or not location:
            break
        if mode == "forge-state" and "/callback" in location:
            location = location.replace("state=", "state=forged", 1)
        status, location, page = open_url(opener, urllib.parse.urljoin(url, location))
    return page


def chromium(url: str) -> str:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.click("button[value=allow]")
            page.wait_for_url("http://127.0.0.1:*/callback?*")
            return page.inner_text("body")
        finally:
            browser.close()


def main() -> None:
    url, mode = sys.argv[1], os.environ.get("SCRIPT_BROWSER", "login")
    seen = chromium(url) if mode == "chromium" else script(url, mode)
    if os.environ.get("SCRIPT_BROWSER_LOG"):
        with open(os.environ["SCRIPT_BROWSER_LOG"], "a") as log:
            log.write(seen + "\n")


if __name__ == "__main__":
    main()
