"""The docs site as a reader meets it: built by `tools/build_docs.py`, served on 127.0.0.1, opened in headless Chromium.

Runs in `make docs-test` (the last step of `make test`), which installs Debian's chromium where missing
(tools/ensure_chromium.sh) and sets VR1_DOCS_TEST=1; a plain `pytest tests` skips it so it does not run twice.
The build reuses the notebook executions cached in _build/executed while notebooks and library are unchanged.
A screenshot of the home page is kept at _docs_site/screenshot-index.png.
"""
import functools, http.server, json, os, re, subprocess, sys, tempfile, threading, time
from pathlib import Path
from urllib.parse import urljoin, urlparse
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT/'_docs_site'
CHROMIUM = os.environ.get('CHROMIUM', '/usr/bin/chromium')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']

pytestmark = pytest.mark.skipif(os.environ.get('VR1_DOCS_TEST') != '1',
                                reason='browser test of the docs site: run `make docs-test` (the last step of `make test`)')

sys.path.insert(0, str(ROOT/'tools'))

@pytest.fixture(scope='module')
def site():
    "Build the site (notebooks execute only where _build/executed is stale) and return the expected pages."
    t = time.time()
    extra = os.environ.get('VR1_DOCS_BUILD_ARGS', '').split()  # e.g. --keep-going while a notebook is being fixed
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--n-workers', os.environ.get('DOCS_WORKERS', '2'), *extra],
                       cwd=ROOT, capture_output=True, text=True)
    print(r.stdout[-3000:], r.stderr[-3000:], f"build {time.time()-t:.1f}s", sep='\n')
    assert r.returncode == 0, f"tools/build_docs.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    import build_docs
    pages = ['index.html'] + [p.relative_to(build_docs.NBS).with_suffix('.html').as_posix()
                              for p in build_docs.all_notebooks(build_docs.site_order()) if p != build_docs.NBS/'index.ipynb']
    for p in pages: assert (SITE/p).is_file(), f"the build wrote no {p}"
    return pages

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

@pytest.fixture(scope='module')
def base_url(site):
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(SITE)))
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown(); srv.server_close()

@pytest.fixture(scope='module')
def browser_page():
    if not os.access(CHROMIUM, os.X_OK): pytest.fail(f"no Chromium at {CHROMIUM}: run tools/ensure_chromium.sh")
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        # a fresh --user-data-dir per run (Playwright passes it for a persistent context)
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=FLAGS[1:],
                                                   viewport={'width': 1400, 'height': 1000})
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.set_default_timeout(30_000)
        page.problems = []
        page.on('console', lambda m: m.type == 'error' and page.problems.append(f"console error: {m.text}"))
        page.on('pageerror', lambda e: page.problems.append(f"page error: {e}"))
        page.on('requestfailed', lambda r: page.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on('response', lambda r: r.status >= 400 and page.problems.append(f"HTTP {r.status}: {r.url}"))
        yield page
        ctx.close()

def _settle(page):
    "Wait until the page and MathJax's typesetting are done."
    page.wait_for_load_state('load')
    page.wait_for_function("!window.MathJax || !MathJax.startup || !MathJax.startup.promise ? true : "
                           "MathJax.startup.promise.then(() => true)")

def _path(url, base): return urlparse(url).path[len(urlparse(base).path):] or 'index.html'

NAV = 'nav.md-nav--primary a.md-nav__link[href]'

@pytest.fixture(scope='module')
def visited(site, base_url, browser_page):
    "Walk the site from the home page by clicking sidebar links only; record per page what a reader would notice."
    page, seen = browser_page, {}
    page.problems.clear(); page.goto(base_url); _settle(page)
    todo = ['index.html']
    while todo:
        cur = todo.pop(0)
        if cur in seen: continue
        if cur != _path(page.url, base_url):
            page.problems.clear()
            page.locator(f'{NAV}[href$="{Path(cur).name}"]').first.click(); _settle(page)
            assert _path(page.url, base_url) == cur, f"clicking the sidebar link to {cur} opened {page.url}"
        info = page.evaluate("""() => ({
            h1: (document.querySelector('article h1') || {}).textContent || '',
            nav: [...document.querySelectorAll('nav.md-nav--primary a.md-nav__link[href]')].map(a => a.href),
            imgs: [...document.querySelectorAll('.jp-OutputArea-output img, article img')].map(i => [i.currentSrc.slice(0, 80), i.naturalWidth]),
            math: document.querySelectorAll('mjx-container').length,
            mathErrors: document.querySelectorAll('mjx-merror').length,
            text: document.querySelector('article').innerText})""")
        info['problems'] = list(page.problems)
        seen[cur] = info
        for href in info['nav']:
            p = _path(href.split('#')[0], base_url)
            if p.endswith('.html') and p not in seen and p not in todo: todo.append(p)
    return seen

def test_navigation_reaches_every_page(site, visited):
    missing = [p for p in site if p not in visited]
    assert not missing, f"pages the sidebar does not reach: {missing}"
    order = [p for p in visited if p in site]
    assert order[1:] == site[1:], f"sidebar order {order} differs from nbs/sidebar.yml's {site}"

def test_pages_load_without_errors(site, visited):
    bad = {p: visited[p]['problems'] for p in site if visited[p]['problems']}
    assert not bad, json.dumps(bad, indent=1)
    for p in site: assert visited[p]['h1'].strip(), f"{p} has no title"

def test_a_plot_renders(site, visited):
    imgs = {p: v['imgs'] for p, v in visited.items() if v['imgs']}
    broken = {p: [src for src, w in v if not w] for p, v in imgs.items() if any(not w for _, w in v)}
    assert not broken, f"images that did not load: {broken}"
    assert any(w for v in imgs.values() for _, w in v), "no page shows a plot (an output image with naturalWidth > 0)"

def test_math_is_typeset(visited):
    assert sum(v['math'] for v in visited.values()) > 0, "MathJax typeset nothing: is the local MathJax loaded?"
    errs = {p: v['mathErrors'] for p, v in visited.items() if v['mathErrors']}
    assert not errs, f"TeX errors: {errs}"

def test_api_reference_and_outputs(visited):
    core = visited.get('00_core.html')
    assert core, "no core page"
    for name in ('validate_record', 'save_jsonl', 'load_config'):    # show_doc output of exported functions
        assert re.search(rf'\b{name}\s*\(', core['text']), f"no API reference for {name} on the core page"
    assert 'default_exp' not in core['text'] and '#| export' not in core['text'], "nbdev directives leaked into the page"

def test_search_finds_a_function(base_url, browser_page, visited):
    page = browser_page
    page.goto(base_url); _settle(page)
    page.locator('label.md-search__icon, .md-search__input').first.click()
    page.fill('input.md-search__input', 'validate_record')
    page.wait_for_selector('.md-search-result__item', timeout=20_000)
    links = [a.get_attribute('href') or '' for a in page.locator('.md-search-result__item a').all()]
    assert any('00_core' in h for h in links), f"searching 'validate_record' did not offer the core page: {links}"

def test_screenshot_of_index(base_url, browser_page, visited):
    page = browser_page
    page.goto(base_url); _settle(page)
    out = SITE/'screenshot-index.png'
    page.screenshot(path=str(out))
    from PIL import Image, ImageStat
    im = Image.open(out).convert('L')
    assert im.size == (1400, 1000)
    assert ImageStat.Stat(im).stddev[0] > 10, "the screenshot is (nearly) one colour: nothing rendered"
    # what a reader sees first: the project's title, in the first screen, drawn (its box is not blank), and the sidebar
    h1 = page.locator('article h1').first
    box = h1.bounding_box()
    assert h1.is_visible() and 'vr1' in h1.inner_text().lower() and box and box['y'] + box['height'] < 1000
    crop = im.crop((int(box['x']), int(box['y']), int(box['x'] + box['width']), int(box['y'] + box['height'])))
    assert ImageStat.Stat(crop).stddev[0] > 10, "the title's area of the screenshot is blank"
    # the sidebar's links drawn on the first screen (its first element is the current page's hidden table-of-contents toggle)
    shown = page.evaluate("""() => [...document.querySelectorAll('.md-sidebar--primary .md-nav__link')].filter(e => {
            const r = e.getBoundingClientRect();
            if (!(r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= innerHeight)) return false;
            const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return hit !== null && (hit === e || e.contains(hit)); }).length""")
    assert shown >= 10, f"the sidebar is not on the first screen: {shown} of its links drawn there"
