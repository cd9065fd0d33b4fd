"""The rendered gallery in a real browser: headless Debian Chromium over a local HTTP server.

Navigates home -> page 2 -> permalink -> next -> genre page -> search result, checks the
random link with and without JavaScript, that the site also works from file://, that no
request leaves 127.0.0.1, that the console stays clean, that no page breaks its
Content-Security-Policy (over HTTP and file://), and saves screenshots at phone
and desktop widths (light and dark) to test-artifacts/render/.

Needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/install_browser.sh) and selenium.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import ROOT
from test_render import HOSTILE, REPORT, catalog_samples, write_samples

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts" / "render"
PAGE_SIZE = 12
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
DESKTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}


def require_browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"headless Chromium is not installed ({', '.join(missing)} missing): run scripts/install_browser.sh")
    return pytest.importorskip("selenium", reason="selenium is in the test extra: pip install -e '.[test]'")


# --- the site and a local server ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """Two archived nights; the newest has a report and a few hostile descriptions."""
    from generator.render import RenderSettings, render

    require_browser()
    work = tmp_path_factory.mktemp("gallery")
    records = catalog_samples()
    old, new = records[:60], HOSTILE[:2] + records[60:]
    settings = RenderSettings(page_size=PAGE_SIZE)
    render(write_samples(work / "old.jsonl", old), work / "site", settings, night="2026-11-24", archive_dir=work / "archive")
    render(write_samples(work / "new.jsonl", new), work / "site", settings, report=REPORT, archive_dir=work / "archive")
    ids = [line["id"] for line in HOSTILE[:2]]
    from generator.artifacts import sha256_text

    ids += [sha256_text(r["text"])[:12] for r in records[60:]]
    return {"site": work / "site", "new": new, "ids": ids}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    seen: list[tuple[str, int]]

    def log_request(self, code="-", size="-"):
        self.seen.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(gallery):
    seen: list[tuple[str, int]] = []
    handler = type("Handler", (QuietHandler,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(gallery["site"])))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}/", "seen": seen}
    httpd.shutdown()
    httpd.server_close()


def make_driver(tmp_path_factory, javascript: bool = True):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    # Without the background-networking flags Chromium phones home at start-up (and is refused here).
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--disable-features=Translate,OptimizationHints,MediaRouter",
                f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit chromedriver: Selenium Manager never downloads anything.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


@pytest.fixture(scope="module")
def driver(tmp_path_factory, gallery):
    driver = make_driver(tmp_path_factory)
    yield driver
    driver.quit()


# --- helpers ------------------------------------------------------------------------------------------

def drain_logs(driver) -> tuple[list[dict], list[str]]:
    """(console entries, URLs the browser requested) since the last call."""
    console = driver.get_log("browser")
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
        elif message.get("method") == "Network.webSocketCreated":
            urls.append(params["url"])
    return console, urls


def assert_clean(driver, allowed_prefixes: tuple[str, ...]) -> list[str]:
    console, urls = drain_logs(driver)
    errors = [e for e in console if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    # Chromium reports a refused script, style or image on the console, at any level.
    assert [e for e in console if "Content Security Policy" in e["message"]] == []
    # chrome:// and friends are the browser's own built-in pages (never the network).
    urls = [u for u in urls if urlsplit(u).scheme not in ("chrome", "chrome-extension", "chrome-untrusted", "devtools")]
    outside = [u for u in urls if not u.startswith(allowed_prefixes + ("data:", "about:"))]
    assert outside == [], f"requests left the site: {outside}"
    return urls


def wait(driver, condition, timeout=20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def click(driver, css: str):
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, css)
    old = driver.current_url
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()
    wait(driver, lambda d: d.current_url != old and d.execute_script("return document.readyState") == "complete")
    return driver.current_url


def texts(driver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.get_attribute("textContent").strip() for e in driver.find_elements(By.CSS_SELECTOR, css)]


def screenshot(driver, name: str, metrics: dict, dark: bool = False) -> Path:
    """Full-page PNG at the given device metrics; also asserts nothing overflows sideways."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: content overflows the {metrics['width']}px viewport by {overflow}px"
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": metrics["width"], "height": min(size["height"], 6000), "scale": 1}})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    return path


# --- tests --------------------------------------------------------------------------------------------

def test_navigation_home_page2_permalink_next_genre_search(driver, server, gallery):
    from selenium.webdriver.common.by import By

    base, new, ids = server["url"], gallery["new"], gallery["ids"]
    drain_logs(driver)
    driver.get(base + "index.html")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Films and series that don't exist"
    assert texts(driver, ".grid .card-text") == [r["text"] for r in new[:12]]

    assert click(driver, "nav.pager a[aria-label='Page 2']").endswith("/all/page-2.html")
    assert texts(driver, ".card-text") == [r["text"] for r in new[PAGE_SIZE: 2 * PAGE_SIZE]]

    assert click(driver, ".card .card-link").endswith(f"/d/{ids[PAGE_SIZE]}.html")
    assert texts(driver, ".feature-text") == [new[PAGE_SIZE]["text"]]

    assert click(driver, "a.pn-next").endswith(f"/d/{ids[PAGE_SIZE + 1]}.html")
    item = new[PAGE_SIZE + 1]
    assert texts(driver, ".feature-text") == [item["text"]]

    assert "/genre/" in click(driver, ".feature a.chip-genre")
    assert driver.find_element(By.TAG_NAME, "h1").text == item["genre"]
    assert item["text"] in texts(driver, ".card-text")
    assert all(r["genre"] == item["genre"] for r in new if r["text"] in texts(driver, ".card-text"))

    assert click(driver, ".site-nav a[href$='search/index.html']").endswith("/search/index.html")
    word = "vineyard" if any("vineyard" in r["text"] for r in new) else item["text"].split()[3]
    box = driver.find_element(By.ID, "q")
    assert box.is_displayed()
    box.send_keys(word)
    wait(driver, lambda d: "match" in d.find_element(By.ID, "search-status").text)
    found = texts(driver, "#search-results .card-text")
    expected = [r["text"] for r in new if word.lower() in (r["text"] + " " + r["type"] + " " + r["genre"]).lower()]
    assert found == expected[:60] and found
    first = click(driver, "#search-results .card-link")
    assert re.search(r"/d/[0-9a-f]{12}\.html$", first)
    assert word.lower() in texts(driver, ".feature-text")[0].lower()

    urls = assert_clean(driver, (base,))
    assert any(u.endswith("/all/page-2.html") for u in urls), "the performance log must see the requests"
    assert not [hit for hit in server["seen"] if hit[1] >= 400], server["seen"]


def test_random_link_picks_client_side_among_the_nights_descriptions(driver, server, gallery):
    base = server["url"]
    drain_logs(driver)
    landed = set()
    for _ in range(3):
        driver.get(base + "index.html")
        url = click(driver, ".site-nav a[data-random]")
        match = re.search(r"/d/([0-9a-z]{12})\.html$", url)
        assert match and match.group(1) in gallery["ids"], url
        landed.add(match.group(1))
    assert_clean(driver, (base,))


def test_hostile_descriptions_stay_text_in_the_browser(driver, server):
    from selenium.webdriver.common.by import By

    base = server["url"]
    drain_logs(driver)
    for record in HOSTILE[:2]:
        driver.get(base + f"d/{record['id']}.html")  # an alert would fail every later command
        assert driver.find_element(By.CSS_SELECTOR, ".feature-text").text == record["text"]
        assert driver.execute_script("return document.querySelectorAll('script:not([src]), img:not([src*=\"assets/\"])').length") == 0
        assert driver.title.startswith(record["text"][:20])
    driver.get(base + "search/index.html?q=javascript")
    wait(driver, lambda d: "match" in d.find_element(By.ID, "search-status").text)
    assert texts(driver, "#search-results .card-text") == [HOSTILE[1]["text"]]
    assert_clean(driver, (base,))


def test_accessible_basics_focus_and_target_sizes(driver, server, gallery):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base = server["url"]
    for page in ("index.html", f"d/{gallery['ids'][3]}.html", "all/page-2.html", "about/index.html"):
        driver.get(base + page)
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        active = driver.switch_to.active_element
        assert active.get_attribute("class") == "skip-link"
        assert driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", active) != "none"
        assert driver.execute_script("return document.querySelectorAll('header, nav, main, footer').length") >= 4
        small = driver.execute_script("""
            return [...document.querySelectorAll('.site-nav a, .chip, .button, .pager a, .pn, .more, .brand')]
              .map(e => [e.textContent.trim(), e.getBoundingClientRect()])
              .filter(([t, r]) => r.width > 0 && (r.width < 24 || r.height < 24)).map(([t]) => t)""")
        assert small == [], f"{page}: targets under 24px: {small}"
    assert_clean(driver, (base,))


def test_screenshots_at_phone_and_desktop_widths(driver, server, gallery):
    base = server["url"]
    drain_logs(driver)
    pages = {"home": "index.html", "page-2": "all/page-2.html", "permalink": f"d/{gallery['ids'][5]}.html",
             "genre": "genre/index.html", "search": "search/index.html?q=family", "about": "about/index.html",
             "archive": "nights/index.html", "archived-night": "nights/2026-11-24/index.html",
             "not-found": "404.html"}
    saved = []
    for name, rel in pages.items():
        driver.get(base + rel)
        if name == "search":
            wait(driver, lambda d: "match" in d.execute_script("return document.getElementById('search-status').textContent"))
        saved.append(screenshot(driver, f"{name}-desktop", DESKTOP))
        saved.append(screenshot(driver, f"{name}-phone", PHONE))
        if name in ("home", "permalink", "about"):
            saved.append(screenshot(driver, f"{name}-phone-dark", PHONE, dark=True))
    for path in saved:
        assert path.stat().st_size > 5000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_clean(driver, (base,))


def test_site_works_from_a_file_path(driver, gallery):
    from selenium.webdriver.common.by import By

    site = gallery["site"].resolve()
    drain_logs(driver)
    driver.get(site.joinpath("index.html").as_uri())
    assert click(driver, "nav.pager a[aria-label='Page 2']").endswith("/all/page-2.html")
    assert click(driver, ".card .card-link").endswith(".html")
    driver.get(site.joinpath("search/index.html").as_uri() + "?q=family")
    wait(driver, lambda d: "match" in d.find_element(By.ID, "search-status").text)
    assert texts(driver, "#search-results .card-text")
    urls = assert_clean(driver, ("file://",))
    assert all(urlsplit(u).scheme in ("file", "data", "about") for u in urls)


def test_without_javascript_random_redirects_and_search_explains(tmp_path_factory, server, gallery):
    from selenium.webdriver.common.by import By

    base = server["url"]
    driver = make_driver(tmp_path_factory, javascript=False)
    try:
        driver.get(base + "index.html")
        driver.find_element(By.CSS_SELECTOR, ".site-nav a[data-random]").click()
        wait(driver, lambda d: re.search(r"/d/[0-9a-z]{12}\.html$", d.current_url))
        assert driver.current_url.rsplit("/", 1)[1][:-5] in gallery["ids"]
        driver.get(base + "search/index.html")
        assert not driver.find_element(By.CSS_SELECTOR, "form[data-search]").is_displayed()
        assert "Search needs JavaScript" in driver.find_element(By.TAG_NAME, "main").text
        assert click(driver, "main a[href$='all/index.html']").endswith("/all/index.html")
        assert len(texts(driver, ".card-text")) == PAGE_SIZE
        assert_clean(driver, (base,))
    finally:
        driver.quit()


CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " blocked " + (event.blockedURI || "inline") +
                              " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


def test_pages_satisfy_the_content_security_policy(tmp_path_factory, server, gallery):
    """Every kind of page, over HTTP and from file://, runs its scripts and styles with no CSP violation."""
    from selenium.webdriver.common.by import By

    from generator.render import CONTENT_SECURITY_POLICY

    base, site = server["url"], gallery["site"].resolve()
    driver = make_driver(tmp_path_factory)
    try:
        # Installed before any page script runs; devtools-injected code is not itself subject to the policy.
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER})
        drain_logs(driver)
        pages = ["index.html", "all/page-2.html", f"d/{gallery['ids'][4]}.html", "genre/index.html",
                 "search/index.html?q=family", "about/index.html", "nights/index.html",
                 "nights/2026-11-24/index.html", "nights/2026-11-24/about.html", "404.html"]
        for prefix, allowed in ((base, (base,)), (site.as_uri() + "/", ("file://",))):
            for rel in pages:
                driver.get(prefix + rel)
                policy = driver.find_element(By.CSS_SELECTOR, "meta[http-equiv='Content-Security-Policy']")
                assert policy.get_attribute("content") == CONTENT_SECURITY_POLICY
                if rel.startswith("search/"):  # the search script ran and built its results
                    wait(driver, lambda d: "match" in d.find_element(By.ID, "search-status").text)
                    assert texts(driver, "#search-results .card-text")
                if rel.startswith("about/"):
                    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart")
                assert driver.execute_script("return window.__cspViolations") == [], prefix + rel
                # The stylesheet applied (a blocked style would leave the browser's default margins).
                assert driver.execute_script("return getComputedStyle(document.body).marginTop") != "8px"
            # The no-JavaScript random link lands through a redirect page that declares the policy too.
            driver.get(prefix + "random/0.html")
            wait(driver, lambda d: re.search(r"/d/[0-9a-z]{12}\.html$", d.current_url))
            assert_clean(driver, allowed)  # no console error, no CSP report, nothing from elsewhere

        # The check can fail: an inline style is refused and reported on these very pages.
        driver.get(base + "index.html")
        driver.execute_script("var s = document.createElement('style'); s.textContent = 'body{color:red}';"
                              "document.head.appendChild(s);")
        wait(driver, lambda d: d.execute_script("return window.__cspViolations.length") > 0)
        assert "style-src" in driver.execute_script("return window.__cspViolations[0]")
        console = drain_logs(driver)[0]
        assert [e for e in console if "Content Security Policy" in e["message"]], console
    finally:
        driver.quit()


def test_titles_show_on_cards_permalinks_and_in_search(driver, tmp_path_factory):
    """A titled night from file://: the card's title links to its permalink, whose heading and tab title it is;
    search finds a description by a word only its title has; a hostile title stays text."""
    from selenium.webdriver.common.by import By

    from generator.render import RenderSettings, render
    from test_render_titles import TITLED

    work = tmp_path_factory.mktemp("titled-gallery")
    render(write_samples(work / "kept.jsonl", TITLED), work / "site", RenderSettings(), night="2026-12-01")
    site = (work / "site").resolve()
    drain_logs(driver)
    driver.get(site.joinpath("index.html").as_uri())
    assert texts(driver, ".grid .card-title") == [r["title"] for r in TITLED if r.get("title")]
    assert texts(driver, ".grid .card-text") == [r["text"] for r in TITLED]
    screenshot(driver, "titled-home-phone", PHONE)
    assert click(driver, ".card .card-title a").endswith(f"/d/{TITLED[0]['id']}.html")
    assert driver.find_element(By.TAG_NAME, "h1").text == TITLED[0]["title"]
    assert driver.title.startswith(TITLED[0]["title"] + " · ")
    assert texts(driver, "a.pn-next .pn-text") == [TITLED[1]["title"]]
    screenshot(driver, "titled-permalink-phone", PHONE)
    driver.get(site.joinpath(f"d/{TITLED[1]['id']}.html").as_uri())  # <script> in a title: an alert would fail here
    assert driver.find_element(By.TAG_NAME, "h1").text == TITLED[1]["title"]
    driver.get(site.joinpath("search/index.html").as_uri() + "?q=lanterns")
    wait(driver, lambda d: "match" in d.find_element(By.ID, "search-status").text)
    assert texts(driver, "#search-results .card-title") == ["Quiet Lanterns"]
    assert click(driver, "#search-results .card-link").endswith(f"/d/{TITLED[3]['id']}.html")
    assert_clean(driver, ("file://",))
