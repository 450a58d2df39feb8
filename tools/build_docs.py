#!/usr/bin/env python
"""Build the docs site from the notebooks, without Quarto, offline.

nbdev renders its docs with Quarto, which cannot be installed on this project's machines. This script makes the same
site from the same sources with packages from PyPI:

1. **order** -- the pages and sidebar sections are read from `nbs/sidebar.yml`, the file Quarto's `nbdev-docs` uses, so
   both builds show the pipeline order. A notebook the sidebar does not name still gets a page (section "More").
2. **execute** -- every notebook runs once, the way `nbdev-test` runs it (nbdev's cell filter: `tst_flags` such as
   `slow`/`gpu` and `#| eval: false` are skipped), after nbdev's `add_show_docs` has put a `show_doc` cell after each
   exported definition, so the API reference comes from the same run. The executed copy goes to
   `_build/executed/<name>.ipynb` with a key (hash of the notebook's cells and of the library sources) in its metadata;
   a later build reuses it while the key matches, so notebooks execute once and docs rebuilds take seconds.
   Outputs never go back into `nbs/` (nbdev-clean keeps them out of git).
3. **process** -- nbdev's own documentation processors (`FilterDefaults` minus `exec_show_docs`, whose work step 2
   did) hide `#| hide` and `#| export` sources, add links, and mark `show_doc` cells; the Quarto directives they leave
   (`echo`, `output`, `include`, ...) and the frontmatter are then applied here.
4. **render** -- mkdocs + mkdocs-material + mkdocs-jupyter turn the processed notebooks into a static site in
   `_docs_site/` with navigation and (offline, lunr) search; math is typeset by a local MathJax 3 copied into the site.

Results that take long (the replication table, benchmark figures) are never recomputed by the docs build: they are
committed under `results/` (`*.json` for machines, `*.md`/`*.png` for pages) and a page includes them in one of two ways:
- a code cell that reads the file, e.g. `display(Markdown(Path('../../results/replication.md').read_text()))` or
  `display(Image(filename='../results/fig.png'))`: it runs in a blink in Jupyter, nbdev-test and this build alike;
- in a markdown cell, Quarto's include shortcode on a line of its own, `{{< include ../results/replication.md >}}`
  (path relative to the notebook, as Quarto resolves it), or an image link `![caption](../results/fig.png)`:
  this build inlines the file / copies the image next to the page.
The slow cell that recomputes such a file is flagged `#| slow` (skipped by nbdev-test and this build) and is also a
CLI command.

Usage: python tools/build_docs.py [--n-workers N] [--no-exec] [--force] [--keep-going] [--execute-only] [--out DIR]
(`make docs`; the site is _docs_site/index.html)
"""
from __future__ import annotations
import argparse, hashlib, json, os, re, shutil, subprocess, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, BUILD = ROOT/'nbs', ROOT/'_build'
EXECUTED, SRC = BUILD/'executed', BUILD/'site_src'
SITE = ROOT/'_docs_site'
BUILD_VERSION = '1'  # bump when the execution step changes, to invalidate cached executions

# ---------------------------------------------------------------------------------------------------------------- order
def _glob_nbs(nbs, pat):
    pat = pat.lstrip('/')  # Quarto's "not recursive" prefix
    return sorted(p for p in nbs.glob(pat) if p.suffix == '.ipynb' and not p.name.startswith(('_', '.')))

def site_order(nbs=NBS):
    "[(section or None, [notebook paths])] in `nbs/sidebar.yml` order, then the notebooks it does not name under 'More'."
    import yaml
    contents = yaml.safe_load((nbs/'sidebar.yml').read_text())['website']['sidebar']['contents']
    seen, out = set(), []
    def resolve(entries):
        res = []
        for e in entries:
            pat = e.get('auto') or e.get('href') if isinstance(e, dict) else e
            if not isinstance(pat, str): continue
            for p in _glob_nbs(nbs, pat):
                if p not in seen: seen.add(p); res.append(p)
        return res
    for e in contents:
        is_sec = isinstance(e, dict) and 'section' in e
        ps = resolve(e.get('contents', []) if is_sec else [e])
        if ps: out.append((e['section'] if is_sec else None, ps))
    rest = [p for p in sorted(nbs.rglob('*.ipynb')) if p not in seen
            and not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts)]
    if rest: out.append(('More', rest))
    return out

def all_notebooks(order): return [p for _, ps in order for p in ps]

# -------------------------------------------------------------------------------------------------------------- execute
def _lib_hash():
    "Hash of what a notebook's outputs depend on besides its own cells: the library and the committed data/results."
    h = hashlib.sha256()
    for d in ('vr1_nb', 'results', 'data_samples'):
        for p in sorted((ROOT/d).rglob('*')):
            if p.is_file() and '__pycache__' not in p.parts and p.suffix != '.pyc':
                h.update(str(p.relative_to(ROOT)).encode()); h.update(p.read_bytes())
    return h.hexdigest()

def nb_key(nb_path, lib_hash):
    "Cache key of an execution: the notebook's cells (sources only), the library, this script's version."
    nb = json.loads(nb_path.read_text())
    cells = [(c['cell_type'], ''.join(c['source']) if isinstance(c['source'], list) else c['source']) for c in nb['cells']]
    blob = json.dumps([BUILD_VERSION, lib_hash, cells])
    return hashlib.sha256(blob.encode()).hexdigest()

def executed_path(nb_path): return EXECUTED/nb_path.relative_to(NBS)

def _cached(nb_path, key):
    dst = executed_path(nb_path)
    if not dst.exists(): return False
    try: meta = json.loads(dst.read_text())['metadata'].get('vr1_docs', {})
    except Exception: return False
    return meta.get('key') == key and meta.get('ok')

def execute_nb(nb_path:str, key:str) -> tuple:
    "Run one notebook like `nbdev-test` does, with `show_doc` cells added; save it with outputs under _build/executed."
    import nbdev.test as nt
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.processors import populate_language, add_show_docs
    from fastcore.nbio import mk_cell, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    nb_path = Path(nb_path); start = time.time()
    os.environ.setdefault('IN_TEST', '1')
    cfg = get_config(nb_path.parent)
    flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else list(cfg.tst_flags or [])
    proc = NBProcessor(nb_path, procs=[populate_language, add_show_docs], rm_directives=False, process=True)
    nb = proc.nb
    skip = nt._skip_cell(nb, flags, [])
    # a show_doc cell is skipped when the definition it documents was (a `#| gpu` export, say)
    last_skipped = False
    for c in nb.cells:
        if getattr(c, 'has_sd', False):
            if last_skipped: c.source = '#| eval: false\n' + c.source; c.directives_ = {'eval': 'false'}
        else: last_skipped = bool(skip(c)) if c.cell_type == 'code' else last_skipped
    if getattr(nb, 'has_docs_', None):
        imp = mk_cell('#| hide\nfrom nbdev.showdoc import show_doc'); imp.directives_ = {'hide': []}
        first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == 'code'), 0)
        nb.cells.insert(first_code + 1, imp)
    skip = nt._skip_cell(nb, flags, [])
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    sys.path.insert(0, str(cfg.config_path))
    k = CaptureShell(nb_path, profile=bool(cfg.exec_profile))
    ok, err = True, ''
    try:
        with working_directory(nb_path.parent):
            k.run_all(nb, exc_stop=True, preproc=skip, cell_timeout=cfg.cell_timeout or None)
    except Exception:
        ok, err = False, (k.prettytb(fname=nb_path) or traceback.format_exc())
    for c in nb.cells:
        for a in ('directives_', 'has_sd', 'idx_'): c.pop(a, None)
        c.get('metadata', {}).pop('execution', None)  # execnb's float timings are not valid nbformat
    nb.metadata['vr1_docs'] = {'key': key, 'ok': ok, 'seconds': round(time.time() - start, 1)}
    dst = executed_path(nb_path); dst.parent.mkdir(parents=True, exist_ok=True)
    nb.pop('path_', None); nb.pop('has_docs_', None)
    write_nb(nb, dst)
    return str(nb_path), ok, time.time() - start, err

def _last_seconds(nb_path):
    "How long the notebook's previous execution took (0 if never executed)."
    try: return json.loads(executed_path(nb_path).read_text())['metadata']['vr1_docs']['seconds']
    except Exception: return 0

def execute_all(nbs, n_workers=1, force=False):
    "Execute the notebooks whose cached execution is missing or stale; return the failures."
    lib = _lib_hash()
    todo = [(p, nb_key(p, lib)) for p in nbs]
    todo = [(p, k) for p, k in todo if force or not _cached(p, k)]
    print(f"execute: {len(nbs) - len(todo)} cached, {len(todo)} to run"
          + (f" ({n_workers} workers)" if todo else ''), flush=True)
    if not todo: return []
    todo.sort(key=lambda t: -_last_seconds(t[0]))  # longest first: the workers finish together
    # `n_workers` forked processes that each run notebook after notebook, as nbdev-test's pool does: torch/transformers
    # are imported once per worker (a fresh process per notebook measured 2-3x slower on this 2-core box)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    fails = []
    ctx = mp.get_context('fork' if sys.platform == 'linux' else 'spawn')
    with ProcessPoolExecutor(max(1, n_workers), mp_context=ctx) as ex:
        # by module name, not __main__: IPython replaces a worker's __main__ with the notebook's namespace
        sys.path.insert(0, str(Path(__file__).parent))
        import build_docs
        futs = {ex.submit(build_docs.execute_nb, str(p), k): p for p, k in todo}
        for f in as_completed(futs):
            try: name, ok, secs, err = f.result()
            except Exception as e: name, ok, secs, err = str(futs[f]), False, 0.0, f"the notebook's process died: {e!r}"
            print(f"  {Path(name).relative_to(NBS)}: {'ok' if ok else 'FAILED'} {secs:.1f}s", flush=True)
            if not ok: fails.append((name, err))
    return fails


# -------------------------------------------------------------------------------------------------------------- process
_QDIR = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_INCLUDE = re.compile(r'^\{\{<\s*include\s+(\S+)\s*>\}\}\s*$', re.M)   # Quarto's include shortcode
_MD_IMG = re.compile(r'(!\[[^\]]*\]\()([^)\s]+)((?:\s+"[^"]*")?\))')
_HTML_IMG = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)("[^>]*>)')

def _quarto_directives(src):
    "Split Quarto `#| key: value` lines off the top of a code cell."
    d, lines = {}, src.splitlines()
    while lines and (m := _QDIR.match(lines[0])):
        d[m.group(1)] = m.group(2).strip('"\''); lines.pop(0)
    return d, '\n'.join(lines)

def _includes(md, nb_dir):
    "Replace `{{< include path >}}` lines (path relative to the notebook, as in Quarto) by the file's text."
    def f(m):
        p = (nb_dir/m.group(1)).resolve()
        if not p.is_file(): raise FileNotFoundError(f"{{{{< include {m.group(1)} >}}}} in a notebook of {nb_dir}: no such file {p}")
        return p.read_text()
    return _INCLUDE.sub(f, md)

def _local_media(md, nb_dir, page_dir, missing='keep'):
    """Copy local images a markdown text links (e.g. ../results/fig.png) next to the page and point the link there.
    A link to no such file is kept (`missing='keep'`: the browser test then reports the 404) or replaced by its alt text
    (`'alt'`: for markdown a cell *printed*, whose links point into a run directory the page cannot see)."""
    def f(m):
        url = m.group(2)
        if re.match(r'^([a-z][\w+.-]*:|#|/)', url, re.I): return m.group(0)
        p = (nb_dir/url).resolve()
        if not p.is_file():
            if missing == 'keep': print(f"warning: {nb_dir.name}: image {url} not found (relative to {nb_dir})")
            alt = re.search(r'!\[([^\]]*)\]', m.group(1))
            return m.group(0) if missing == 'keep' else f"*[{alt.group(1) if alt and alt.group(1) else url}]*"
        name = f"{hashlib.sha1(str(p).encode()).hexdigest()[:8]}_{p.name}"
        (page_dir/'_media').mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, page_dir/'_media'/name)
        return f"{m.group(1)}_media/{name}{m.group(3)}"
    return _HTML_IMG.sub(f, _MD_IMG.sub(f, md))

def _output_media(c, nb_dir, page_dir):
    "The same for the text/markdown outputs of a code cell."
    for o in c.get('outputs', []):
        md = o.get('data', {}).get('text/markdown')
        if md is None: continue
        md = ''.join(md) if isinstance(md, list) else md
        o['data']['text/markdown'] = _local_media(md, nb_dir, page_dir, missing='alt')

def _fm_cell(fm):
    title, desc = fm.get('title', ''), fm.get('description', '')
    md = f"# {title}\n" if title else ''
    if desc: md += f"\n> {desc}\n"
    return md

_PROGRESS = re.compile(r'^.*\d+%\|.*\|.*$')  # tqdm bars: noise on a page

def _drop_progress(c):
    "Remove progress-bar lines from a code cell's stderr (a page is not a terminal)."
    outs = []
    for o in c.get('outputs', []):
        if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
            text = ''.join(o['text']) if isinstance(o['text'], list) else o['text']
            lines = [l.rsplit('\r', 1)[-1] for l in text.split('\n')]
            text = '\n'.join(l for l in lines if not _PROGRESS.match(l)).strip('\n')
            if not text.strip(): continue
            o['text'] = text + '\n'
        outs.append(o)
    c['outputs'] = outs

_FM_LINE = re.compile(r'^(#\s+\S.*|>\s+\S.*|-\s+[\w-]+:\s*\S+\s*)$')

def _split_title_cell(nb):
    "nbdev turns the first markdown cell into frontmatter and drops it whole: keep its prose in a cell of its own."
    c = next((c for c in nb.cells if c.cell_type == 'markdown'), None)
    if c is None or not re.search(r'^#\s+\S', c.source, re.M): return
    lines = c.source.splitlines()
    fm = [l for l in lines if _FM_LINE.match(l)]
    rest = '\n'.join(l for l in lines if not _FM_LINE.match(l)).strip()
    if not rest: return
    from fastcore.nbio import mk_cell
    c.source = '\n\n'.join(fm)
    nb.cells.insert(nb.cells.index(c) + 1, mk_cell(rest, 'markdown'))

def process_nb(nb_path):
    "nbdev's doc processors over the executed notebook, then the Quarto directives applied for mkdocs-jupyter."
    from nbdev.process import NBProcessor
    from nbdev.processors import FilterDefaults, exec_show_docs
    from fastcore.nbio import read_nb, write_nb, mk_cell
    src = executed_path(nb_path)
    if not src.exists(): src = nb_path  # --no-exec and never executed: the page shows the sources only
    procs = [p for p in FilterDefaults().procs() if p is not exec_show_docs]
    nb = read_nb(src)
    _split_title_cell(nb)
    nb = NBProcessor(nb=nb, procs=procs, rm_directives='quarto', process=True).nb
    fm = getattr(nb, 'frontmatter_', {}) or {}
    dst = SRC/nb_path.relative_to(NBS); dst.parent.mkdir(parents=True, exist_ok=True)
    cells = []
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'): continue  # Quarto frontmatter
        if c.cell_type == 'markdown':
            c.source = _local_media(_includes(c.source, nb_path.parent), nb_path.parent, dst.parent)
            if c.source.strip() in ('::: {.py-2 .px-3 .mb-4 fig-align="center" .border .rounded .shadow-sm}', ':::'): continue
        if c.cell_type == 'code':
            _drop_progress(c)
            _output_media(c, nb_path.parent, dst.parent)
            d, c.source = _quarto_directives(c.source)
            if d.get('include') == 'false' or d.get('echo') == 'false' and not c.get('outputs'): continue
            if d.get('output') == 'false': c.outputs = []
            if d.get('echo') == 'false':
                # output only: a markdown cell with the text/markdown output (show_doc) or an input-less code cell
                md = _markdown_output(c)
                if md is not None: cells.append(mk_cell(md, 'markdown')); continue
                c.metadata.setdefault('tags', []).append('remove_input')
            if not c.source.strip() and not c.get('outputs'): continue
        for a in ('directives_', 'has_sd', 'idx_'): c.pop(a, None)
        cells.append(c)
    title = fm.get('title') or nb_path.stem
    cells.insert(0, mk_cell(_fm_cell({**fm, 'title': title}), 'markdown'))
    for i, c in enumerate(cells): c['id'] = f'cell{i}'  # stable ids: an unchanged page hits mkdocs-jupyter's cache
    nb.cells = cells
    for a in ('path_', 'frontmatter_', 'has_docs_'): nb.pop(a, None)
    write_nb(nb, dst)
    return dst, title, fm.get('description', '')

def _markdown_output(c):
    outs = c.get('outputs', [])
    mds = [o for o in outs if o.get('output_type') in ('display_data', 'execute_result') and 'text/markdown' in o.get('data', {})]
    if not mds or len(mds) != len(outs): return None
    return '\n\n'.join((lambda t: ''.join(t) if isinstance(t, list) else t)(o['data']['text/markdown']) for o in mds)

# --------------------------------------------------------------------------------------------------------------- render
def _mathjax_dir():
    "A local MathJax 3 (its es5 build), shipped on PyPI by the `django-static-mathjax` wheel (static files only, no Django)."
    import importlib.util
    spec = importlib.util.find_spec('mathjax')
    for loc in (spec.submodule_search_locations or []) if spec else []:
        d = Path(loc)/'static'/'mathjax'/'es5'
        if (d/'tex-chtml.js').exists(): return d
    raise SystemExit("no local MathJax 3: pip install django-static-mathjax (it is in the `dev` extra: pip install -e '.[dev]')")

# tex-chtml.js plus what it loads lazily: its fonts, TeX extensions (\boldsymbol, \cancel, ...) and the right-click menu
_MATHJAX_PARTS = ('tex-chtml.js', 'input/tex/extensions', 'output/chtml/fonts/woff-v2', 'ui', 'a11y')

def copy_mathjax(dst):
    src = _mathjax_dir()
    for part in _MATHJAX_PARTS:
        s, d = src/part, dst/part
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_dir(): shutil.copytree(s, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns('*.map'))
        else: shutil.copy2(s, d)

# MathJax 3 configured like Jupyter's: $...$ and $$...$$, never inside code or outputs
MATHJAX_CFG = r"""window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: 'tex2jax_ignore|jp-OutputArea-output', processHtmlClass: 'tex2jax_process'}
};
"""

def write_mkdocs_yml(pages, site):
    "mkdocs.yml for the processed notebooks in _build/site_src (generated: the notebooks' order lives in sidebar.yml)."
    import yaml
    from nbdev.config import get_config
    cfg = get_config()
    nav = []
    for section, items in pages:
        entries = [{title: str(rel)} for rel, title in items]
        if section is None: nav.extend(entries)
        else: nav.append({section: entries})
    conf = {
        'site_name': cfg.get('title') or cfg.lib_name, 'site_description': cfg.get('description', ''),
        # no repo_url: material would query the GitHub API from every page (console errors offline)
        'docs_dir': str(SRC), 'site_dir': str(site), 'use_directory_urls': False, 'nav': nav, 'strict': False,
        'copyright': f'Source: <a href="{cfg.get("git_url")}">{cfg.get("git_url")}</a>',
        'theme': {'name': 'material', 'font': False, 'features': ['navigation.sections', 'navigation.expand',
                  'navigation.top', 'search.highlight', 'toc.follow'],
                  'palette': {'primary': 'indigo'}},
        'plugins': ['search', {'mkdocs-jupyter': {'execute': False, 'include_source': False, 'ignore_h1_titles': True,
                    'include_requirejs': False, 'remove_tag_config': {'remove_input_tags': ['remove_input']},
                    # the nbconvert template's MathJax 2 tag gets an empty script: MathJax 3 loads below
                    'custom_mathjax_url': 'data:text/javascript,', 'highlight_extra_classes': '',
                    'toc_depth': 3, 'cache': True, 'cache_dir': str(BUILD/'mkdocs-jupyter-cache')}}],
        'extra_javascript': ['assets/mathjax_config.js', 'assets/mathjax/tex-chtml.js'],
        'extra_css': ['assets/extra.css'],
        'markdown_extensions': ['tables', 'admonition', 'toc'],
    }
    p = BUILD/'mkdocs.yml'
    p.write_text(yaml.safe_dump(conf, sort_keys=False))
    return p

EXTRA_CSS = """/* notebooks rendered by mkdocs-jupyter inside mkdocs-material */
.jupyter-wrapper .jp-InputPrompt, .jupyter-wrapper .jp-OutputPrompt { display: none !important; }
.jupyter-wrapper .jp-Cell { padding: 2px 0; }
.jupyter-wrapper blockquote { border-left: .2rem solid var(--md-default-fg-color--lightest); padding-left: .6rem; }
.md-typeset .jupyter-wrapper table { font-size: .75rem; }
"""

def render(order, site):
    t = time.time()
    pages, descs = [], {}
    for section, nbs in order:
        items = []
        for p in nbs:
            dst, title, desc = process_nb(p)
            rel = dst.relative_to(SRC); descs[rel] = desc
            items.append((rel, re.sub(r'[`*]', '', title)))
        pages.append((section, items))
    if not (SRC/'index.ipynb').exists(): pages.insert(0, (None, [(write_index(pages, descs), 'Home')]))
    print(f"process: {sum(len(i) for _, i in pages)} notebooks {time.time() - t:.1f}s", flush=True)
    assets = SRC/'assets'; assets.mkdir(parents=True, exist_ok=True)
    (assets/'mathjax_config.js').write_text(MATHJAX_CFG)
    (assets/'extra.css').write_text(EXTRA_CSS)
    copy_mathjax(assets/'mathjax')
    yml = write_mkdocs_yml(pages, site)
    t = time.time()
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '-q', '-f', str(yml)], cwd=ROOT,
                       env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if r.returncode: raise SystemExit(f"mkdocs build failed ({r.returncode})")
    print(f"render: mkdocs {time.time() - t:.1f}s -> {site.relative_to(ROOT) if site.is_relative_to(ROOT) else site}")
    return pages

def write_index(pages, descs):
    "A home page listing every page, used until nbs/index.ipynb (the README's source) exists."
    from nbdev.config import get_config
    cfg = get_config()
    md = [f"# {cfg.get('title') or cfg.lib_name}", '', f"> {cfg.get('description', '')}", '']
    for section, items in pages:
        if section: md += [f"## {section}", '']
        md += [f"- [{t}]({Path(rel).with_suffix('.html').as_posix()})" + (f": {descs[rel]}" if descs.get(rel) else '')
               for rel, t in items] + ['']
    (SRC/'index.md').write_text('\n'.join(md))
    return Path('index.md')

# ----------------------------------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n-workers', type=int, default=int(os.environ.get('DOCS_WORKERS', 1)), help='notebooks executed in parallel')
    ap.add_argument('--no-exec', action='store_true', help='render without executing (stale or missing outputs stay so)')
    ap.add_argument('--force', action='store_true', help='re-execute every notebook')
    ap.add_argument('--out', default=str(SITE), help='site folder')
    ap.add_argument('--keep-going', action='store_true', help='render even if a notebook fails')
    ap.add_argument('--execute-only', action='store_true',
                    help="only run the notebooks (nbdev-test's cell selection, fails like it), keeping outputs for the docs")
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    for k, v in dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', VR1_THREADS='1', HF_HUB_OFFLINE='1',
                     HF_DATASETS_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false',
                     MPLBACKEND='module://matplotlib_inline.backend_inline').items():
        os.environ.setdefault(k, v)
    t0 = time.time()
    order = site_order()
    nbs = all_notebooks(order)
    fails = []
    if not a.no_exec: fails = execute_all(nbs, a.n_workers, a.force)
    for name, err in fails: sys.stderr.write(f"\n=== {name} failed ===\n{err}\n")
    if fails and not a.keep_going: raise SystemExit(f"{len(fails)} notebook(s) failed: " + ', '.join(Path(n).name for n, _ in fails))
    if a.execute_only:
        print(f"{len(nbs)} notebooks executed ok in {time.time() - t0:.1f}s"); return
    missing = [p for p in nbs if not executed_path(p).exists()]
    if missing: print(f"warning: never executed, rendered without outputs: {', '.join(p.name for p in missing)}")
    if SRC.exists(): shutil.rmtree(SRC)
    site = Path(a.out).resolve()
    render(order, site)
    print(f"docs: {len(nbs)} pages in {time.time() - t0:.1f}s; open {site/'index.html'}")

if __name__ == '__main__': main()
