"""Behaviour tests for vr1_nb.synth.

The answers are re-derived *independently* of the generator's solver: counting and chart answers from the rendered
pixels plus the English question (parsed here with our own regexes), geometry answers from the outline's pixels, the
scene's vertices (shoelace, distances, atan2) and filled grid squares.
"""
import json, math, re, hashlib, random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vr1_nb import synth
from vr1_nb.synth import (make_problem, generate, make_splits, problem_key, describe_scene, solve_scene, solution_steps,
                          write_sample, corpus_texts, r1_response, FAMILIES)
from vr1_nb.core import validate_record, save_jsonl, load_jsonl, LETTERS

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO/'data_samples'/'synth'

# Colour names by RGB, written out here rather than read from the module under test.
RGB = {(220, 40, 40): 'red', (30, 160, 60): 'green', (40, 80, 220): 'blue', (235, 190, 20): 'yellow',
       (140, 60, 190): 'purple', (245, 130, 20): 'orange'}
PX = 14  # grid unit of geometry and charts, 28 px token cell = 2 units


def arr(rec): return np.asarray(rec['images'][0].convert('RGB')).astype(int)

def numeric(rec):
    "The answer as an int: the option text for multiple choice."
    return int(rec['answer_text'])

# ---------------------------------------------------------------- counting: recount from pixels, parse the question

def objects_from_pixels(a):
    "Recover (shape, colour) per 28 px cell from the fill fraction and the dominant colour."
    objs = []
    for r in range(a.shape[0] // 28):
        for c in range(a.shape[1] // 28):
            cell = a[r*28:(r+1)*28, c*28:(c+1)*28].reshape(-1, 3)
            ink = cell[(cell != 255).any(1)]
            if len(ink) == 0: continue
            colour = RGB[Counter(map(tuple, ink)).most_common(1)[0][0]]
            frac = len(ink) / (28 * 28)  # square 20x20 -> .51, disc -> .40, triangle -> .27
            shape = 'square' if frac > .46 else 'circle' if frac > .33 else 'triangle'
            objs.append((shape, colour))
    return objs

NOUN = r'(?:(red|green|blue|yellow) )?(objects?|circles?|squares?|triangles?)'

def _filter(m_colour, m_noun):
    f = {}
    if m_colour: f['colour'] = m_colour
    noun = m_noun.rstrip('s')
    if noun != 'object': f['shape'] = noun
    return f

def _n(objs, f):
    return sum(1 for s, c in objs if f.get('shape', s) == s and f.get('colour', c) == c)

def count_answer(question, objs):
    "Answer a counting question from its English text alone."
    if question == "How many objects are there in total?": return len(objs)
    if m := re.fullmatch(rf"How many {NOUN} are left if all {NOUN} are removed\?", question):
        keep, gone = _filter(*m.group(1, 2)), _filter(*m.group(3, 4))
        left = [o for o in objs if _n([o], gone) == 0]
        return _n(left, keep)
    if m := re.fullmatch(rf"How many more {NOUN} than {NOUN} are there\?", question):
        return _n(objs, _filter(*m.group(1, 2))) - _n(objs, _filter(*m.group(3, 4)))
    if m := re.fullmatch(rf"If all {NOUN} are removed and (\d+) {NOUN} (?:is|are) added, how many objects are there\?", question):
        return len(objs) - _n(objs, _filter(*m.group(1, 2))) + int(m.group(3))
    if m := re.fullmatch(rf"How many {NOUN} are there\?", question): return _n(objs, _filter(*m.group(1, 2)))
    raise AssertionError(f"unparsed question {question!r}")


@pytest.mark.parametrize('size', [112, 224])
def test_counting_answers_recounted_from_pixels(size):
    recs = generate(60, families=['counting'], seed=1, size=size, mc_fraction=0.3)
    kinds = Counter()
    for r in recs:
        objs = objects_from_pixels(arr(r))
        scene = [(o['shape'], o['color']) for o in r['metadata']['scene']['objects']]
        assert sorted(objs) == sorted(scene), r['id']  # the pixels show exactly the scene
        assert count_answer(r['question'], objs) == numeric(r), (r['id'], r['question'])
        kinds[r['question'].split()[2]] += 1
    assert len(kinds) >= 4  # several question forms were exercised


def test_counting_levels_grow_harder():
    mean = {}
    for lvl in (1, 2, 3):
        rs = generate(40, families=['counting'], levels=[lvl], seed=2, render=False)
        mean[lvl] = np.mean([len(r['metadata']['scene']['objects']) for r in rs])
        assert all(r['metadata']['level'] == lvl for r in rs)
    assert mean[1] < mean[2] < mean[3]
    assert all(5 >= len(r['metadata']['scene']['objects']) for r in generate(40, families=['counting'], levels=[1], render=False))

# ---------------------------------------------------------------- geometry: outline pixels, shoelace, filled squares

def _longest_run(m):
    "Longest run of True along the rows of a 2-D boolean array."
    d = np.diff(np.pad(m, ((0, 0), (1, 1))).ravel().astype(np.int8))
    return int((np.nonzero(d == -1)[0] - np.nonzero(d == 1)[0]).max())

def axis_sides(a):
    "Width and height in grid units of the figure, from its longest horizontal and vertical black outline runs."
    dark = (a.sum(-1) == 0)  # labels are at most 6 px wide, a diagonal's run per row is shorter than the leg it spans
    return round(_longest_run(dark) / PX), round(_longest_run(dark.T) / PX)

def filled_squares(a):
    "Number of grid squares whose centre pixel has the light-blue figure fill."
    cs = a[PX // 2::PX, PX // 2::PX]
    return int(((cs == (170, 200, 250)).all(-1)).sum())

def shoelace(poly):
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1]))) / 2


def test_geometry_answers_recomputed_independently():
    recs = generate(150, families=['geometry'], seed=3, size=224) + generate(60, families=['geometry'], seed=4, size=112)
    seen = Counter()
    for r in recs:
        s, q, a, ans = r['metadata']['scene']['shape'], r['question'], arr(r), numeric(r)
        seen[(s['kind'], r['metadata']['query']['op'])] += 1
        if s['kind'] in ('rectangle', 'right_triangle', 'lshape'):
            w, h = axis_sides(a)  # read from the pixels
        if s['kind'] == 'rectangle':
            if 'area' in q: assert ans == w * h == filled_squares(a), r['id']
            elif 'perimeter' in q: assert ans == 2 * (w + h), r['id']
            else: assert 'diagonal' in q and ans == math.hypot(w, h), r['id']
        elif s['kind'] == 'right_triangle':
            labels = sorted(int(t) for t in re.findall(r'labelled (\d+)', describe_scene(r)))
            if 'unlabelled leg' in q:  # labels: the other leg and the hypotenuse
                other, hyp = labels
                assert {ans, other} == {w, h} and ans ** 2 + other ** 2 == hyp ** 2, r['id']
                continue
            assert labels == sorted([w, h]), r['id']  # the labels say what the grid shows
            if 'area' in q: assert ans * 2 == w * h, r['id']
            elif 'hypotenuse' in q: assert ans == math.hypot(w, h), r['id']
            else: assert 'perimeter' in q and ans == w + h + math.hypot(w, h), r['id']
        elif s['kind'] == 'lshape':
            poly = synth.figure_polygon(r['metadata']['scene'])
            assert ans == filled_squares(a) == shoelace(poly), r['id']
            assert (w, h) == (s['w'], s['h'])
        else:
            (ax, ay), (bx, by), (cx, cy) = s['vertices']
            A = math.degrees(math.atan2(ay - cy, cx - ax)); B = math.degrees(math.atan2(by - cy, bx - cx))
            assert abs(A - s['angles'][0]) < .5 and abs(B - s['angles'][1]) < .5, r['id']  # drawn to scale
            assert ans == 180 - round(A) - round(B), r['id']
    assert len(seen) == 9, seen  # all nine figure/question kinds were generated


def test_hypotenuses_are_whole_numbers_and_fit():
    for size in (112, 224):
        for r in generate(90, families=['geometry'], levels=[2, 3], size=size, render=False, seed=5):
            s = r['metadata']['scene']
            xs, ys = zip(*synth.figure_polygon(s))
            assert min(xs) >= 0 and min(ys) >= 0 and max(xs) <= s['grid'] and max(ys) <= s['grid'], r['id']
            assert float(r['answer_text']).is_integer()

# ---------------------------------------------------------------- charts: values read back from pixels

def chart_values(a):
    "Bar heights or line-marker heights in grid units, left to right, read from the pixels."
    black = (a.sum(-1) == 0)
    base = max(range(a.shape[0]), key=lambda y: (black[y].sum(), y))  # the x axis: the longest (lowest) black row
    H, W = black.shape
    ys, xs = np.nonzero(np.lib.stride_tricks.sliding_window_view(black, (5, 5)).all((-1, -2)))  # 5x5 black markers
    markers = list(zip(ys + 2, xs + 2))
    if markers:
        return 'line', [round((base - y) / PX) for y, x in sorted(markers, key=lambda m: m[1])]
    sat = (a.max(-1) - a.min(-1)) > 100
    cols = [x for x in range(W) if sat[:, x].any()]
    runs, vals = [], []
    for x in cols:
        if runs and x == runs[-1][-1] + 1: runs[-1].append(x)
        else: runs.append([x])
    for run in runs:
        x = run[len(run) // 2]
        top = np.nonzero(sat[:, x])[0].min() - 1  # the outline sits one px above the fill
        vals.append(round((base - top) / PX))
    return 'bar', vals


def chart_answer(q, v):
    "Answer a chart question from its English text and the values read off the image."
    d = dict(zip(LETTERS, v))
    if m := re.fullmatch(r"What is the value of ([A-H]) in the (?:bar|line) chart\?", q): return d[m[1]]
    if re.fullmatch(r"What is the largest value in the (bar|line) chart\?", q): return max(v)
    if re.fullmatch(r"What is the smallest value in the (bar|line) chart\?", q): return min(v)
    if m := re.fullmatch(r"How much larger is ([A-H]) than ([A-H])\?", q): return d[m[1]] - d[m[2]]
    if m := re.fullmatch(r"What is the sum of ([A-H]) and ([A-H])\?", q): return d[m[1]] + d[m[2]]
    if re.fullmatch(r"What is the sum of all the values in the (bar|line) chart\?", q): return sum(v)
    if q == "What is the difference between the largest and the smallest value?": return max(v) - min(v)
    if m := re.fullmatch(r"How many (?:bars|points) have a value greater than (\d+)\?", q): return sum(x > int(m[1]) for x in v)
    raise AssertionError(f"unparsed question {q!r}")


@pytest.mark.parametrize('size,n', [(112, 45), (224, 30)])
def test_chart_answers_read_back_from_pixels(size, n):
    ops = Counter()
    for r in generate(n, families=['chart'], seed=6, size=size):
        kind, vals = chart_values(arr(r))
        sc = r['metadata']['scene']
        assert (kind, vals) == (sc['kind'], sc['values']), r['id']
        assert chart_answer(r['question'], vals) == numeric(r), (r['id'], r['question'])
        ops[r['metadata']['query']['op']] += 1
    assert len(ops) >= 6

# ---------------------------------------------------------------- records, multiple choice, scenes

def test_records_follow_the_schema_and_mc_is_consistent():
    recs = generate(120, seed=7, mc_fraction=0.5, render=False)
    assert {r['source'] for r in recs} == {f'synth/{f}' for f in FAMILIES}
    assert len({r['id'] for r in recs}) == 120
    n_mc = 0
    for r in recs:
        validate_record(dict(r))
        m = r['metadata']
        assert json.loads(json.dumps(m)) == m and m['variant'] in ('free', 'mc') and m['level'] in (1, 2, 3)
        if m['variant'] == 'mc':
            n_mc += 1
            ch = r['choices']
            assert r['answer_type'] == 'multiple_choice' and len(ch) == 4 and len(set(ch)) == 4
            assert all(c.isdigit() for c in ch)  # non-negative integers
            assert ch[LETTERS.index(r['answer'])] == r['answer_text']
        else:
            assert r['choices'] == [] and r['answer'] == r['answer_text'] and r['answer_type'] == 'integer'
        assert solve_scene(r) == r['answer']
        assert str(r['answer_text']) in solution_steps(r)[-1] and r1_response(r).endswith(f"<answer>{r['answer']}</answer>")
    assert 30 < n_mc < 90
    # the letter of the right option is spread over A-D, not always the same
    assert len({r['answer'] for r in recs if r['choices']}) == 4


def test_describe_scene_is_exact():
    for r in generate(60, seed=8, render=False):
        d, sc = describe_scene(r), r['metadata']['scene']
        if 'objects' in sc:
            assert d.count(' in row ') == len(sc['objects'])
            for o in sc['objects']:
                assert f"a {o['color']} {o['shape']} in row {o['row'] + 1}, column {o['col'] + 1}" in d
        elif 'values' in sc:
            assert all(f"{l} = {v}" in d for l, v in zip(sc['labels'], sc['values']))
        else:
            assert str(sc['shape'].get('w', sc['shape'].get('base', sc['shape'].get('angles', [''])[0]))) in d


def test_metadata_survives_arrow_and_jsonl(tmp_path):
    from vr1_nb.core import to_dataset
    recs = generate(9, seed=9, mc_fraction=0.5)
    ds = to_dataset(recs)
    assert len(ds) == 9 and {json.loads(m)['family'] if isinstance(m, str) else m['family'] for m in ds['metadata']} == set(FAMILIES)
    back = load_jsonl(save_jsonl(recs, tmp_path/'p.jsonl'))
    for a, b in zip(recs, back):
        assert a['metadata'] == b['metadata'] and solve_scene(b) == a['answer']


def test_a_record_regenerates_from_its_metadata():
    for r in generate(9, seed=10, size=224, mc_fraction=0.5):
        m = r['metadata']
        again = make_problem(m['family'], m['seed'], m['level'], m['variant'], m['size'], m['split'], id=r['id'])
        assert {k: v for k, v in again.items() if k != 'images'} == {k: v for k, v in r.items() if k != 'images'}
        assert again['images'][0].tobytes() == r['images'][0].tobytes()

# ---------------------------------------------------------------- determinism and splits

def _tree_digest(d):
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(d).rglob('*')) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b, c = (tmp_path/x for x in 'abc')
    save_jsonl(generate(12, seed=11, mc_fraction=.5), a/'p.jsonl'); save_jsonl(generate(12, seed=11, mc_fraction=.5), b/'p.jsonl')
    save_jsonl(generate(12, seed=12, mc_fraction=.5), c/'p.jsonl')
    da, db, dc = _tree_digest(a), _tree_digest(b), _tree_digest(c)
    assert len(da) == 13 and da == db
    assert da['p.jsonl'] != dc['p.jsonl']


def test_committed_sample_regenerates_byte_identical(tmp_path):
    assert SAMPLE.exists(), "data_samples/synth is missing: run vr1_nb.synth.write_sample('data_samples/synth', seed=0)"
    write_sample(tmp_path, seed=0)
    committed, fresh = _tree_digest(SAMPLE), _tree_digest(tmp_path)
    assert committed.keys() == fresh.keys()
    differ = [k for k in committed if committed[k] != fresh[k]]
    if differ:  # say whether only the PNG encoding differs (another Pillow/zlib) or the content itself
        from PIL import Image, features
        same_px = all(k.endswith('.png') and np.array_equal(np.asarray(Image.open(SAMPLE/k)), np.asarray(Image.open(tmp_path/k))) for k in differ)
        raise AssertionError(f"{len(differ)} files of data_samples/synth differ when regenerated, e.g. {differ[:3]}; "
                             + (f"pixels are identical, only the PNG encoder differs (Pillow {Image.__version__}, zlib {features.version('zlib')}): "
                                if same_px else "the content differs: ")
                             + "if the change is intended, rerun vr1_nb.synth.write_sample('data_samples/synth', seed=0) and commit")
    recs = load_jsonl(SAMPLE/'train.jsonl') + load_jsonl(SAMPLE/'test.jsonl')
    assert 30 <= len(recs) <= 60 and {r['source'] for r in recs} == {f'synth/{f}' for f in FAMILIES}
    assert {r['metadata']['split'] for r in recs} == {'train', 'test'}


def test_train_and_test_never_overlap():
    kw = dict(families=['counting'], levels=[1], render=False)
    train = generate(2000, split='train', **kw)
    keys = {problem_key(r) for r in train}
    raw_test = generate(500, split='test', **kw)
    assert sum(problem_key(r) in keys for r in raw_test) > 0  # the two seed streams do collide on small scenes...
    tr, te = make_splits(2000, 500, **kw)
    assert [r['id'] for r in tr] == [r['id'] for r in train]
    tk = [problem_key(r) for r in te]
    assert len(te) == 500 and len(set(tk)) == 500 and not set(tk) & keys  # ...and make_splits removes them
    # the variant does not make a problem new
    r = train[0]; m = r['metadata']
    assert problem_key(make_problem('counting', m['seed'], 1, 'mc' if m['variant'] == 'free' else 'free', render=False)) == problem_key(r)


def test_corpus_texts_cover_reasoning_format():
    t = corpus_texts(300)
    assert len(t) == 300 and t == corpus_texts(300)
    joined = '\n'.join(t)
    for needle in ('<think>', '</think>', '<answer>', '</answer>', 'Choices:', '(A)', 'hypotenuse', 'bar chart', 'triangle', '°'):
        assert needle in joined, needle
    assert set('0123456789') <= set(joined)


def test_bad_input_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown synth family 'tables'"): make_problem('tables')
    with pytest.raises(ValueError, match='size=100'): make_problem('counting', size=100)
    with pytest.raises(ValueError, match="variant='open'"): make_problem('counting', variant='open')
    with pytest.raises(ValueError, match='level=0'): generate(3, levels=[0])
    with pytest.raises(ValueError, match="record 'x', field 'metadata'"): solve_scene({'id': 'x', 'metadata': {'family': 'chart'}})
    with pytest.raises(ValueError, match="unknown synth family"): generate(2, families=['counting', 'maps'])


@pytest.mark.parametrize('fmt', ['jsonl', 'parquet'])
def test_write_splits_round_trips(tmp_path, fmt):
    from vr1_nb.core import load_problems
    from vr1_nb.synth import write_splits
    s = write_splits(tmp_path, 40, 20, seed=3, fmt=fmt, families=['counting', 'chart'], levels=[1], mc_fraction=.5)
    assert json.loads((tmp_path/'synth_summary.json').read_text()) == s
    tr, te = load_problems(tmp_path/f'train.{fmt}'), load_problems(tmp_path/f'test.{fmt}')
    assert (len(tr), len(te)) == (40, 20) and sum(s['train'].values()) == 40 and sum(s['test'].values()) == 20
    assert s['test_drawn'] - s['test_dropped'] == 20
    assert not {problem_key(r) for r in tr} & {problem_key(r) for r in te}
    for r in tr + te:
        assert solve_scene(r) == r['answer'] and len(r['images']) == 1
