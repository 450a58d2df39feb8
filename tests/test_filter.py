"Contracts of vr1_nb.filter: bridge + filter on synthetic data keeps only verified chains, every rejection has a reason."
import json
from pathlib import Path
import pytest
from vr1_nb.core import load_jsonl
from vr1_nb.answers import verify_completions
from vr1_nb.bridge import bridge_run, load_sharegpt
from vr1_nb.filter import *

def test_bridge_then_filter_on_synthetic_data(tmp_path):
    cfg = dict(synth=dict(n=24, seed=11), k=2, progress=False,
               teachers=dict(mllm=dict(backend='scene', seed=4), reasoner=dict(backend='scene', seed=4)))
    chains = bridge_run(cfg, tmp_path/'bridge')
    cold = filter_run(dict(truncate_reflection=True), tmp_path/'bridge', tmp_path/'filter')  # a bridge run dir is accepted
    kept, rejected = load_jsonl(cold), load_jsonl(tmp_path/'filter'/'rejected.jsonl')
    assert len(kept) + len(rejected) == 48 and 0 < len(kept) < 48  # a yield below 100%...
    assert all(verify_completions([r['response'] for r in kept], [r['answer'] for r in kept], [r['choices'] or None for r in kept], tagged_only=True))
    assert all(format_ok(r['response']) and not any(k in r['response'] for k in ('Wait', 'Hmm', 'Alternatively')) for r in kept)
    s = json.loads((tmp_path/'filter'/'summary.json').read_text())
    assert all(r['reject_reason'] for r in rejected) and sum(s['reasons'].values()) == len(rejected)  # ...that the summary explains
    assert {'wrong_answer', 'near_duplicate'} <= set(s['reasons'])
    assert s['kept_with_teacher_errors'] > 0  # pseudo reasoning paths survive answer checking, and are counted
    assert (tmp_path/'filter'/'summary.png').stat().st_size > 1000 and 'yield' in (tmp_path/'filter'/'summary.md').read_text()
    assert json.loads((tmp_path/'filter'/'COMPLETE').read_text())['kept'] == len(kept)

def _r(i, response, answer='4', **kw):
    return {**dict(id=f'r{i}', question=f'q{i}', answer=answer, answer_type='integer', choices=[], images=[], source='t',
                   metadata={}, response=response), **kw}

GOOD = "<think>\nThere are 3 circles and 1 square, so 3 + 1 = 4 objects.\n</think>\n<answer>4</answer>"

def test_every_reason(tmp_path):
    recs = [_r(0, GOOD), _r(1, ""), _r(2, "I'm sorry, but I can't help with that."), _r(3, "The answer is 4."),
            _r(4, GOOD.replace('<answer>4', '<answer>5')), _r(5, "<think>\n4\n</think>\n<answer>4</answer>"),
            _r(6, GOOD.replace('objects.', 'objects. ' + 'x' * 200)), _r(0, GOOD, id='r7'),
            _r(8, None, reject_reason='teacher_error: unreadable image'),
            _r(9, "<think>\nThere are 3 circles; plus 1 square gives 4.\nWait, let me check again: 5.\n</think>\n<answer>4</answer>")]
    kept, rej = filter_records(recs, max_chars=200)
    got = {r['id']: r['reject_reason'] for r in rej}
    assert got == {'r1': 'empty', 'r2': 'refusal', 'r3': 'bad_format', 'r4': 'wrong_answer', 'r5': 'too_short',
                   'r6': 'too_long', 'r7': 'near_duplicate', 'r8': 'teacher_error: unreadable image'}
    assert [r['id'] for r in kept] == ['r0', 'r9'] and 'Wait' in kept[1]['response']
    kept2, _ = filter_records(recs, max_chars=200, truncate_reflection=True)
    r9 = next(r for r in kept2 if r['id'] == 'r9')
    assert r9['response'] == "<think>\nThere are 3 circles; plus 1 square gives 4.\n</think>\n<answer>4</answer>"
    assert r9['metadata']['truncated_at_reflection']
    _, rej3 = filter_records([_r(0, "I looked at the picture.\nI am not sure what it shows.")], require_format=False)
    assert rej3[0]['reject_reason'] == 'no_answer'

def test_multiple_choice_and_released_data(tmp_path):
    mc = dict(_r(0, "<think>\nOption B has 5 sides, which matches.\n</think>\n<answer>B</answer>", answer='B'),
              answer_type='multiple_choice', choices=['4', '5'], answer_text='5')
    assert [r['id'] for r in filter_records([mc])[0]] == ['r0']
    (tmp_path/'v.json').write_text(json.dumps([{"conversations": [{"from": "human", "value": "<image>2+2?"},
                                                                  {"from": "gpt", "value": "Two plus two makes four. \\boxed{4}"}]}]))
    kept, rej = filter_records(load_sharegpt(tmp_path/'v.json'), require_format=False)
    assert len(kept) == 1 and not rej
    assert filter_records(load_sharegpt(tmp_path/'v.json'))[1][0]['reject_reason'] == 'bad_format'

def test_reflection_stats_and_config_errors():
    s = reflection_stats([GOOD, "Wait. Hmm, wait. Alternatively: Check."], ['Wait', 'Hmm', 'Alternatively', 'Check'])
    assert s == {'Wait': dict(count=1, share=0.5), 'Hmm': dict(count=1, share=0.5), 'Alternatively': dict(count=1, share=0.5),
                 'Check': dict(count=1, share=0.5)}
    with pytest.raises(ValueError, match="unknown key.*'max_len'"): filter_records([], max_len=3)

def test_max_tokens_with_and_without_a_tokenizer():
    rec = _r(0, GOOD)
    assert count_tokens(GOOD) == len(__import__('re').findall(r"\w+|[^\w\s]", GOOD))
    assert filter_records([rec], max_tokens=10)[1][0]['reject_reason'] == 'too_long'
    assert filter_records([rec], max_tokens=1000)[0]
    class Tok:  # any callable with the tokenizers' interface
        def __call__(self, text, add_special_tokens=False): return {'input_ids': list(text)}
    assert count_tokens('abc', Tok()) == 3
    assert filter_records([rec], max_tokens=len(GOOD) - 1, tokenizer=Tok())[1][0]['reject_reason'] == 'too_long'
