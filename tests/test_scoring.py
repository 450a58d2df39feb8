"""vr1_nb.scoring against the published numbers of the real third-party records in ../shared/benchmarks.

MathVista: exact (179/263/261 of 1000) from the stored GPT extractions, record by record equal to the stored verdicts.
MATH-V: from the raw responses, rule-based, eval-free; the official mode reproduces all five published files record for record,
the corrected mode differs only for the causes CORRECTED_CAUSES counts.
"""
import json, re
from collections import Counter
from pathlib import Path
import pytest
from vr1_nb.scoring import (score_file, score_details, score_mathvista, mathvista_normalize, mathv_extract, mathv_correct,
                            mathruler_agreement, judge_answers, score_mathverse, BENCHMARKS)
from vr1_nb.benchmarks import read_predictions, load_mathvision, load_mathverse
from vr1_nb.answers import extract_answer

BENCH = Path(__file__).parents[2] / 'shared' / 'benchmarks'
pytestmark = pytest.mark.skipif(not BENCH.exists(), reason='../shared/benchmarks not present')

MATHVISTA_PUBLISHED = {'random_guess': 179, 'frequent_guess': 263, 'llava_llama_2_13b': 261}


@pytest.mark.parametrize('name,count', MATHVISTA_PUBLISHED.items())
def test_mathvista_reproduces_published_counts(name, count):
    f = BENCH / 'mathvista' / 'results' / f'output_{name}.json'
    s, res = score_details('mathvista', f)
    assert (s['correct'], s['total']) == (count, 1000)
    stored = {p['id']: p for p in read_predictions(f)}
    assert [r['id'] for r in res if r['correct'] != stored[r['id']]['true_false']] == []
    # normalised predictions equal the stored ones, except where the stored file predates `int(float(x))`: LLaVA's
    # non-integer extractions for integer problems were normalised to None then (to '66' now); wrong either way
    diff = {r['id'] for r in res if r['prediction'] != stored[r['id']]['prediction']}
    assert diff == ({'246', '835', '983', '987'} if name == 'llava_llama_2_13b' else set())
    assert all(stored[i]['prediction'] is None and not stored[i]['true_false'] for i in diff)
    # breakdowns agree with the published scores file
    pub = json.loads((BENCH / 'mathvista' / 'results' / f'scores_{name}.json').read_text())
    for key in ('question_type', 'answer_type', 'language', 'source', 'category', 'task', 'context', 'grade', 'skills'):
        for val, d in pub[key].items():
            got = s['breakdowns'][key][val]
            assert (got['correct'], got['total']) == (d['correct'], d['total']), (key, val)
    json.dumps(s)


def test_mathvista_with_data_file_and_missing_extraction(tmp_path):
    d = json.loads((BENCH / 'mathvista' / 'results' / 'output_frequent_guess.json').read_text())
    one = {k: v for k, v in list(d.items())[:3]}
    del one['1']['extraction']                                   # no extraction: wrong, no crash
    f = tmp_path / 'out.json'; f.write_text(json.dumps(one))
    s, res = score_details('mathvista', f)
    assert res[0]['correct'] is False and res[0]['extraction_source'] == 'missing' and s['total'] == 3
    # our own JSONL (response only): rule-based extraction against testmini.json
    ours = tmp_path / 'ours.jsonl'
    ours.write_text('\n'.join(json.dumps(x) for x in [dict(id='1', response='<think>...</think><answer>1.2</answer>'),
                                                    dict(id='2', response='The answer is 3.'), dict(id='3', response='', prediction='(B)')]))
    s, res = score_details('mathvista', ours, BENCH / 'mathvista' / 'testmini.json')
    assert [r['extraction_source'] for r in res] == ['rules', 'rules', 'prediction']
    assert res[0]['correct'] is True and s['missing'] == 997


def test_mathvista_normalisation_rules():
    assert mathvista_normalize('', ['a long option', 'B'], 'multi_choice', 'text', None) == 'B'   # empty -> nearest option
    assert mathvista_normalize('(c) whatever', ['x', 'y', 'z'], 'multi_choice', 'text', None) == 'z'
    assert mathvista_normalize('12.7', None, 'free_form', 'integer', None) == '12'
    assert mathvista_normalize('3.14159', None, 'free_form', 'float', 2) == '3.14'
    assert mathvista_normalize([1, 2], None, 'free_form', 'list', None) == '[1, 2]'


# MATH-V, official mode (the default): latex2sympy2 1.9.1's verdicts reproduced by rule. Upstream's evaluate.py/utils.py run
# unchanged with latex2sympy2 1.9.1 reproduce every stored `correct` of these files, so the official mode must too: record for record.
MATHV_PUBLISHED = {'LLaVA-v1.5-7B': 259, 'Gemini-Pro-CoT': 436, 'ChatGPT3.5-CoT': 296, 'GPT4-CoT': 248, 'Random-Chance': 218}
# The corrected mode, record by record against upstream's stored verdict: every difference has one of these causes (see 03a_scoring),
# and each file has exactly this many of each.
def _cause(r):
    a, g, v = r['extracted'], r['answer'], r['answer_value']
    if '\\circ' in v: return 'degree'      # gold option '$120^{\\circ}$': 1.9.1's lexer has no \\circ
    if '\\boxed' in g: return 'boxed'      # gold '$\\boxed{\\frac{3}{4}}$': no \\boxed either
    if '\\$' in v: return 'dollar'         # gold option '$3\\sqrt{3}-\\pi \\$': `$` -> space leaves a lone backslash
    if 'mathrm' in a + g + v or re.fullmatch(r'[\\d.]+m', a): return 'units'   # '21\\mathrm{~cm}' = '$21 \\mathrm{~cm}$': units read
    if a == '{4}' and not r['correct']: return 'group'   # a group (4) in 1.9.1, a set for math-verify
    if not r['correct'] and re.search(r'[.}][a-z]', a): return 'prefix'   # '5.so,even...': 1.9.1 read the number before the prose
    return 'unexplained'
CORRECTED_CAUSES = {'Random-Chance': {'units': 43, 'degree': 15, 'dollar': 1}, 'LLaVA-v1.5-7B': {},
                    'ChatGPT3.5-CoT': {'units': 17, 'degree': 5, 'boxed': 1, 'prefix': 1},
                    'GPT4-CoT': {'units': 1, 'prefix': 2, 'group': 1}, 'Gemini-Pro-CoT': {'units': 6, 'degree': 1}}


@pytest.fixture(scope='module')
def mathv_scores():
    f = lambda m, mode: score_details('mathvision', BENCH / 'mathvision' / 'outputs' / f'{m}.jsonl', BENCH / 'mathvision' / 'test.jsonl', mode=mode)
    return {(m, mode): f(m, mode) for m in MATHV_PUBLISHED for mode in ('official', 'corrected')}


def _official_keys(res, ids):
    keys = set()
    for r in res:
        if r['id'] in ids:
            lv, sj = r['level'], r['subject']
            keys |= {'-all', f'-level{lv}', sj, f'{sj}_level{lv}', f'-level{lv}_{sj}'}
    return keys


@pytest.mark.parametrize('model', MATHV_PUBLISHED)
def test_mathvision_official_mode_reproduces_published_counts(mathv_scores, model):
    s, res = mathv_scores[model, 'official']
    published = json.loads((BENCH / 'mathvision' / 'outputs' / f'{model}_result.json').read_text())
    assert published['-all'].startswith(f"{MATHV_PUBLISHED[model]}/3040")
    assert (s['correct'], s['total'], s['mode']) == (MATHV_PUBLISHED[model], 3040, 'official')
    stored = {p['id']: p for p in read_predictions(BENCH / 'mathvision' / 'outputs' / f'{model}.jsonl')}
    # the rule-based extraction is upstream's, and so is every verdict
    assert [r['id'] for r in res if r['extracted'] != stored[r['id']]['model_answer']] == []
    assert [r['id'] for r in res if r['correct'] != stored[r['id']]['correct']] == []
    assert s['breakdowns']['official'] == published   # the whole `_result.json`, line by line


@pytest.mark.parametrize('model', MATHV_PUBLISHED)
def test_mathvision_corrected_mode_differences_are_explained(mathv_scores, model):
    s, res = mathv_scores[model, 'corrected']
    stored = {p['id']: p for p in read_predictions(BENCH / 'mathvision' / 'outputs' / f'{model}.jsonl')}
    diffs = [r for r in res if r['correct'] != stored[r['id']]['correct']]
    assert dict(Counter(_cause(r) for r in diffs)) == CORRECTED_CAUSES[model], [(r['id'], r['extracted'], r['answer_value']) for r in diffs]
    assert s['correct'] - MATHV_PUBLISHED[model] == sum(1 if r['correct'] else -1 for r in diffs)
    keys = _official_keys(res, {r['id'] for r in diffs})
    published = json.loads((BENCH / 'mathvision' / 'outputs' / f'{model}_result.json').read_text())
    assert {k: v for k, v in s['breakdowns']['official'].items() if k not in keys} == {k: v for k, v in published.items() if k not in keys}


def test_score_file_mathvision_defaults_to_official():
    f = BENCH / 'mathvision' / 'outputs' / 'Random-Chance.jsonl'
    assert score_file('mathvision', f, BENCH / 'mathvision' / 'test.jsonl')['correct'] == 218
    with pytest.raises(ValueError, match='official'): score_file('mathvision', f, BENCH / 'mathvision' / 'test.jsonl', mode='lenient')


def test_mathv_rules_without_eval():
    assert mathv_extract('The answer is 5.') == '5' and mathv_extract('(B)\nbecause') == 'b'
    assert mathv_correct('4/3', '', '\\frac{4}{3}') and mathv_correct('E', '$\\pi$', '3.14')
    for official in (True, False):
        assert not mathv_correct('5', '', "__import__('os').system('touch /tmp/vr1_mathv')", official)
        assert not mathv_correct('5', '', "(lambda:__import__('os').system('touch /tmp/vr1_mathv'))()", official)
    assert not Path('/tmp/vr1_mathv').exists()


# Each official rule on answers of the kind a held-out file brings (latex2sympy2 1.9.1's verdict, checked against the library
# itself in a scratch environment; see bench/mathv_l2s191_parity.py), and what the corrected mode says instead.
OFFICIAL_RULES = [  # gold, gold option text, model answer, official verdict, corrected verdict
    ('C', '$75^\\circ$', '75', False, True),                        # lexer: no \\circ
    ('A', '$\\$18$', '18', False, True),                            # `$` -> space leaves a lone backslash
    ('4', '', '4.thereforetheansweris4', True, False),              # the parse ends at a period
    ('6', '', '6____31', True, False),                              # a NUMBER takes no subscript
    ('3', '', '{3}', True, False),                                  # a group, not a set
    ('6', '', '12\\frac{1}{2}', True, False),                        # no mixed numbers: 12*1/2
    ('12.5', '', '12\\frac{1}{2}', False, True),
    ('6', '', '3(2)', True, False),                                 # juxtaposition multiplies,
    ('63', '', '1/2(126)', False, False),                           # before division: 1/(2*126)
    ('99503', '', '(99,503)', True, False),                         # thousands commas inside a NUMBER
    ('1', '', '4>0', True, False),                                  # an evaluated relation prints True
    ('2.72', '', 'e', False, True),                                 # E is a NameError under `from math import *`
    ('19', '', '19\\text{cm}', False, True),                          # \\text{} stays text in 1.9.1
    ('0.33', '', '\\frac{3^{1008}-1}{3^{1009}}', True, True),         # exact integer division, no overflow
]


@pytest.mark.parametrize('gold,value,answer,official,corrected', OFFICIAL_RULES)
def test_mathv_official_rules(gold, value, answer, official, corrected):
    assert mathv_correct(gold, value, answer, official=True) is official
    assert mathv_correct(gold, value, answer, official=False) is corrected


def test_r1v_conventions_for_clevr_and_geoqa(tmp_path):
    "R1-V's eval scripts: counting reads the digits of the first <answer>N</answer>; GeoQA math-verifies the whole output against the value."
    from vr1_nb.core import save_jsonl
    recs = [dict(id='c1', question='How many?', answer='4', answer_type='integer', source='superclevr'),
            dict(id='c2', question='How many?', answer='4', answer_type='integer', source='superclevr'),
            dict(id='c3', question='How many?', answer='4', answer_type='integer', source='superclevr'),
            dict(id='g1', question='Angle CED?', answer='140°', answer_type='text', source='geoqa'),
            dict(id='g2', question='Angle CED?', answer='140°', answer_type='text', source='geoqa'),
            dict(id='g3', question='Angle?', choices=['30°', '60°'], answer='B', answer_text='60°', answer_type='multiple_choice', source='geoqa')]
    data = tmp_path / 'data.jsonl'; save_jsonl(recs, data)
    preds = tmp_path / 'preds.jsonl'
    preds.write_text('\n'.join(json.dumps(x) for x in [
        dict(id='c1', response='<think>3+1</think><answer> 4 </answer>'), dict(id='c2', response='<answer>4.0</answer>'),
        dict(id='c3', response='<answer>5</answer> no, <answer>4</answer>'),
        dict(id='g1', response='<think>180-40=140</think><answer>140</answer>'), dict(id='g2', response='<answer>140</answer>'),
        dict(id='g3', response='<answer> 60 </answer>')]))
    s, res = score_details('clevr', preds, data)
    assert [r['correct'] for r in res[:3]] == [True, False, False] and [r['extracted'] for r in res[:3]] == ['4', None, '5']
    s, res = score_details('geoqa', preds, data)
    assert [r['correct'] for r in res[3:]] == [True, False, True] and res[3]['extracted'] == '140'   # g2: nothing parses (as in R1-V)
    assert {r['convention'] for r in res} == {'r1v_geoqa'}


def test_mathverse_rule_based():
    probs = load_mathverse(BENCH / 'mathverse' / 'testmini_text_only.json')
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        right, wrong = Path(d) / 'r.jsonl', Path(d) / 'w.jsonl'
        right.write_text('\n'.join(json.dumps(dict(id=r['id'], response=f"<think>.</think><answer>{r['answer']}</answer>")) for r in probs))
        wrong.write_text('\n'.join(json.dumps(dict(id=r['id'], response='<think>.</think><answer>Z</answer>')) for r in probs))
        s = score_file('mathverse', right, BENCH / 'mathverse' / 'testmini_text_only.json')
        assert (s['correct'], s['total']) == (788, 788) and s['breakdowns']['problem_version'] == {'Text Only': dict(correct=788, total=788, accuracy=1.0)}
        assert score_file('mathverse', wrong, BENCH / 'mathverse' / 'testmini_text_only.json')['correct'] == 0


class _FakeChat:
    "An OpenAI-shaped client whose judge says 1 when the extracted answer equals the standard answer (to test the plumbing)."
    def __init__(self): self.chat = self; self.completions = self; self.calls = 0
    def create(self, model, messages, temperature):
        self.calls += 1
        p = messages[0]['content']
        if p.startswith('I am providing'): out = p.split('Model Response: ')[1].split('\n')[0].split('<answer>')[-1].split('</answer>')[0]
        else: out = '1' if p.split('[Standard Answer]: ')[1].split('\n')[0] == p.split('[Model_answer]: ')[1].split('\n')[0] else '0'
        msg = type('M', (), {'content': out}); ch = type('C', (), {'message': msg})
        return type('R', (), {'choices': [ch]})


def test_mathverse_llm_judge_plumbing():
    probs = load_mathverse(BENCH / 'mathverse' / 'testmini_text_only.json')[:4]
    preds = [dict(id=r['id'], response=f"<answer>{r['answer'] if i % 2 == 0 else 'nope'}</answer>") for i, r in enumerate(probs)]
    client = _FakeChat()
    s, res = score_mathverse(preds, probs, judge=dict(client=client, model='judge'))
    assert [r['correct'] for r in res] == [True, False, True, False] and client.calls == 8


def test_synth_conventions_via_score_file(tmp_path):
    from vr1_nb.core import save_jsonl
    recs = [dict(id='c1', question='How many?', answer='3', answer_type='integer', source='synth/counting'),
            dict(id='c2', question='How many?', answer='4', answer_type='integer', source='synth/counting'),
            dict(id='g1', question='Angle?', choices=['30°', '60°'], answer='B', answer_text='60°', answer_type='multiple_choice', source='geoqa'),
            dict(id='m1', question='Simplify', answer='\\frac{1}{2}', answer_type='fraction', source='mm-math'),
            dict(id='m2', question='Expand', answer='x^2+2x+1', answer_type='expression', source='mm-math')]
    data = tmp_path / 'data.jsonl'; save_jsonl(recs, data)
    preds = tmp_path / 'preds.jsonl'
    preds.write_text('\n'.join(json.dumps(x) for x in [dict(id='c1', response='\\boxed{3}'), dict(id='c2', response='\\boxed{4.5}'),
                                                        dict(id='g1', response='<answer>60°</answer>'), dict(id='m1', response='\\boxed{0.5}'),
                                                        dict(id='m2', response='so \\boxed{(x+1)^2}')]))
    s, res = score_details('synth', preds, data)
    assert [r['correct'] for r in res] == [True, False, True, True, True]
    assert s['breakdowns']['convention'] == {'integer': dict(correct=1, total=2, accuracy=0.5), 'math': dict(correct=2, total=2, accuracy=1.0),
                                             'multiple_choice': dict(correct=1, total=1, accuracy=1.0)}
    assert score_file('geoqa', preds, data)['total'] == 5
    json.dumps(s)


def test_score_file_errors(tmp_path):
    with pytest.raises(ValueError, match='unknown benchmark'): score_file('mmlu', tmp_path / 'x.jsonl')
    with pytest.raises(ValueError, match='--data'): score_file('synth', BENCH / 'mathvision' / 'outputs' / 'LLaVA-v1.5-7B.jsonl')
    with pytest.raises(FileNotFoundError): score_file('mathvista', tmp_path / 'none.json')
    bad = tmp_path / 'bad.jsonl'; bad.write_text('{"id": "1", "response": "2"}\n{not json\n')
    with pytest.raises(ValueError, match='line 2'): score_file('mathvision', bad, BENCH / 'mathvision' / 'test.jsonl')
    unknown = tmp_path / 'u.jsonl'; unknown.write_text('{"id": "nope", "response": "2"}\n')
    with pytest.raises(KeyError, match='nope'): score_file('mathvision', unknown, BENCH / 'mathvision' / 'test.jsonl')


def test_mathruler_agreement_on_shared_records():
    "Our verification vs mathruler's grade_answer on MATH-V testmini responses of both models; prints the report."
    pytest.importorskip('mathruler')
    probs = {r['id']: r for r in load_mathvision(BENCH / 'mathvision' / 'testmini.jsonl')}
    P, G, C = [], [], []
    for m in ('LLaVA-v1.5-7B', 'Gemini-Pro-CoT'):
        for p in read_predictions(BENCH / 'mathvision' / 'outputs' / f'{m}.jsonl'):
            if p['id'] in probs:
                r = probs[p['id']]; P.append(extract_answer(p['response'])); G.append(r['answer']); C.append(r['choices'] or None)
    rep = mathruler_agreement(P, G, C)
    print(json.dumps(rep, indent=1, ensure_ascii=False))
    assert rep['n'] == 608 and rep['agreement'] >= 0.95
    kinds = {k.split(':')[0] for k in rep['disagreements']}
    assert kinds <= {'multiple choice (letter vs option text / format)', 'number vs text/units/LaTeX', 'LaTeX expressions', 'plain numbers', 'text'}
