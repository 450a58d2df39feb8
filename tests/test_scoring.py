"""vr1_nb.scoring against the published numbers of the real third-party records in ../shared/benchmarks.

MathVista: exact (179/263/261 of 1000) from the stored GPT extractions, record by record equal to the stored verdicts.
MATH-V: from the raw responses, rule-based, eval-free; LLaVA-v1.5-7B 259/3040 exactly, Gemini-Pro-CoT 437 vs 436 published;
every record whose verdict differs from upstream's stored `correct` is listed in KNOWN_DIFFS with its cause.
"""
import json
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


# Every record where our eval-free port's verdict differs from upstream's stored `correct`, with its cause.
KNOWN_DIFFS = {
    ('Gemini-Pro-CoT', '270'): "gold option text is '$1080^{\\circ}$' and the model answered 1080: latex2sympy2_extended (math-verify's "
                               "parser) strips $...$ and ^{\\circ} and reads 1080, so is_equal holds; upstream's latex2sympy2 1.9.1 "
                               "did not parse the option text and scored it wrong (+1 for us: 437 vs the published 436)",
}
MATHV_PUBLISHED = {'LLaVA-v1.5-7B': 259, 'Gemini-Pro-CoT': 436}


@pytest.fixture(scope='module')
def mathv_scores():
    return {m: score_details('mathvision', BENCH / 'mathvision' / 'outputs' / f'{m}.jsonl', BENCH / 'mathvision' / 'test.jsonl')
            for m in MATHV_PUBLISHED}


@pytest.mark.parametrize('model', MATHV_PUBLISHED)
def test_mathvision_reproduces_published_counts(mathv_scores, model):
    s, res = mathv_scores[model]
    published = json.loads((BENCH / 'mathvision' / 'outputs' / f'{model}_result.json').read_text())
    assert published['-all'].startswith(f"{MATHV_PUBLISHED[model]}/3040")
    assert s['total'] == 3040 and abs(s['correct'] - MATHV_PUBLISHED[model]) <= 5
    stored = {p['id']: p for p in read_predictions(BENCH / 'mathvision' / 'outputs' / f'{model}.jsonl')}
    # the rule-based extraction is upstream's, record for record
    assert [r['id'] for r in res if r['extracted'] != stored[r['id']]['model_answer']] == []
    diffs = {(model, r['id']) for r in res if r['correct'] != stored[r['id']]['correct']}
    assert diffs == {k for k in KNOWN_DIFFS if k[0] == model}, sorted(diffs)
    assert s['correct'] - MATHV_PUBLISHED[model] == sum(1 if dict(
        (r['id'], r['correct']) for r in res)[i] else -1 for _, i in diffs)
    # the official `_result.json` dictionary, except the entries holding a known difference
    touched = {r['id'] for r in res if (model, r['id']) in KNOWN_DIFFS}
    keys_touched = set()
    for r in res:
        if r['id'] in touched:
            lv, sj = r['level'], r['subject']
            keys_touched |= {'-all', f'-level{lv}', sj, f'{sj}_level{lv}', f'-level{lv}_{sj}'}
    ours = s['breakdowns']['official']
    assert set(ours) == set(published)
    assert {k: v for k, v in ours.items() if k not in keys_touched} == {k: v for k, v in published.items() if k not in keys_touched}


def test_mathv_rules_without_eval():
    assert mathv_extract('The answer is 5.') == '5' and mathv_extract('(B)\nbecause') == 'b'
    assert mathv_correct('4/3', '', '\\frac{4}{3}') and mathv_correct('E', '$\\pi$', '3.14')
    assert not mathv_correct('5', '', "__import__('os').system('touch /tmp/vr1_mathv')")
    assert not Path('/tmp/vr1_mathv').exists()


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
    for m in MATHV_PUBLISHED:
        for p in read_predictions(BENCH / 'mathvision' / 'outputs' / f'{m}.jsonl'):
            if p['id'] in probs:
                r = probs[p['id']]; P.append(extract_answer(p['response'])); G.append(r['answer']); C.append(r['choices'] or None)
    rep = mathruler_agreement(P, G, C)
    print(json.dumps(rep, indent=1, ensure_ascii=False))
    assert rep['n'] == 608 and rep['agreement'] >= 0.95
    kinds = {k.split(':')[0] for k in rep['disagreements']}
    assert kinds <= {'multiple choice (letter vs option text / format)', 'number vs text/units/LaTeX', 'LaTeX expressions', 'plain numbers', 'text'}
