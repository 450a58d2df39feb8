"""The pieces of tools/build_docs.py that decide what a page shows (fast; the whole site is tested in test_docs.py)."""
import json, shutil, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import build_docs as bd

def _nb(path, cells=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'cells': list(cells), 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}))
    return path

def test_order_follows_sidebar_and_keeps_unlisted_notebooks(tmp_path):
    shutil.copy(ROOT/'nbs'/'sidebar.yml', tmp_path/'sidebar.yml')
    for n in ('13_cli', '03a_scoring', '03_answers', '06_generate', '00_core', '99_new', '_private', 'tutorials/demo'):
        _nb(tmp_path/f'{n}.ipynb')
    order = [(s, [p.relative_to(tmp_path).as_posix() for p in ps]) for s, ps in bd.site_order(tmp_path)]
    assert order == [('Problems and data', ['00_core.ipynb']),
                     ('Answers and rewards', ['03_answers.ipynb', '03a_scoring.ipynb']),
                     ('Models, runs and generation', ['06_generate.ipynb']), ('CLI and the whole pipeline', ['13_cli.ipynb']),
                     ('Tutorials', ['tutorials/demo.ipynb']), ('More', ['99_new.ipynb'])]

def test_real_sidebar_lists_pipeline_in_order():
    secs = [s for s, _ in bd.site_order()]
    want = ['Problems and data', 'Answers and rewards', 'Models, runs and generation', 'Cold-start data', 'SFT',
            'GRPO and PTST', 'Iteration', 'Evaluation', 'GPU plans and dry run', 'CLI and the whole pipeline',
            "The papers' settings", 'Walkthroughs, one per paper', 'Tutorials']
    assert secs == [None] + want             # the index page, then the method's order as the index's table gives it

def test_quarto_directives_split_off():
    d, src = bd._quarto_directives('#| echo: false\n#| output: asis\nshow_doc(f)\n#| not: top')
    assert d == {'echo': 'false', 'output': 'asis'} and src == 'show_doc(f)\n#| not: top'

def test_include_shortcode_inlines_committed_results(tmp_path):
    (tmp_path/'results').mkdir(); (tmp_path/'results'/'t.md').write_text('| a |\n|---|\n| 1 |\n')
    nb_dir = tmp_path/'nbs'/'tutorials'; nb_dir.mkdir(parents=True)
    md = bd._includes('Table:\n\n{{< include ../../results/t.md >}}\n', nb_dir)
    assert '| 1 |' in md and 'include' not in md
    with pytest.raises(FileNotFoundError, match='missing.md'): bd._includes('{{< include ../missing.md >}}', nb_dir)

def test_local_images_are_copied_next_to_the_page(tmp_path):
    (tmp_path/'results').mkdir(); (tmp_path/'results'/'fig.png').write_bytes(b'\x89PNG fake')
    nb_dir, page_dir = tmp_path/'nbs', tmp_path/'site'
    nb_dir.mkdir(); page_dir.mkdir()
    md = bd._local_media('![acc](../results/fig.png) ![w](https://x.org/a.png) <img src="../results/fig.png">', nb_dir, page_dir)
    copied = list((page_dir/'_media').iterdir())
    assert len(copied) == 1 and copied[0].read_bytes() == b'\x89PNG fake'
    assert md.count(f'_media/{copied[0].name}') == 2 and 'https://x.org/a.png' in md

def test_progress_bars_dropped_from_stderr():
    c = {'outputs': [{'output_type': 'stream', 'name': 'stderr', 'text': 'Map: 100%|#####| 2/2 [00:00<00:00]\nwarning: x\n'},
                     {'output_type': 'stream', 'name': 'stderr', 'text': 'Casting:  50%|##  | 1/2\rCasting: 100%|####| 2/2\n'},
                     {'output_type': 'stream', 'name': 'stdout', 'text': '50%|kept in stdout|\n'}]}
    bd._drop_progress(c)
    assert [o['text'] for o in c['outputs']] == ['warning: x\n', '50%|kept in stdout|\n']

def test_cache_key_ignores_outputs_but_not_sources(tmp_path):
    cell = {'cell_type': 'code', 'source': 'x = 1', 'metadata': {}, 'outputs': [], 'execution_count': None}
    a = _nb(tmp_path/'a.ipynb', [cell])
    b = _nb(tmp_path/'b.ipynb', [{**cell, 'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': '1'}]}])
    c = _nb(tmp_path/'c.ipynb', [{**cell, 'source': 'x = 2'}])
    assert bd.nb_key(a, 'lib') == bd.nb_key(b, 'lib') != bd.nb_key(c, 'lib')
    assert bd.nb_key(a, 'lib') != bd.nb_key(a, 'lib2')

def test_printed_markdown_links_into_a_run_dir_become_alt_text(tmp_path):
    c = {'outputs': [{'output_type': 'display_data', 'data': {'text/markdown': '# report\n![accuracy per stage](accuracy.png)\n',
                                                              'text/plain': '<Markdown>'}}]}
    bd._output_media(c, tmp_path, tmp_path)
    assert c['outputs'][0]['data']['text/markdown'] == '# report\n*[accuracy per stage]*\n'

def test_title_cell_prose_is_kept():
    from fastcore.nbio import dict2nb
    nb = dict2nb({'cells': [{'cell_type': 'markdown', 'metadata': {}, 'source': '# core\n\n> The schema.\n\nThis notebook is\n- a list: of things\n- order: 2'}],
                  'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5})
    bd._split_title_cell(nb)
    assert [c.source for c in nb.cells] == ['# core\n\n> The schema.\n\n- order: 2', 'This notebook is\n- a list: of things']
