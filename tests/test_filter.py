"Contracts of vr1_nb.filter: bridge + filter on synthetic data keeps only verified chains, every rejection has a reason."
import json
from pathlib import Path
import pytest
from vr1_nb.core import load_jsonl
from vr1_nb.answers import verify_completions
from vr1_nb.bridge import bridge_run, load_sharegpt
from vr1_nb.rewards import openvlthinker_format_reward, FormatReward, LAYOUTS
from vr1_nb.filter import *

def test_bridge_then_filter_on_synthetic_data(tmp_path):
    cfg = dict(synth=dict(n=24, seed=11), k=2, progress=False,
               teachers=dict(mllm=dict(backend='scene', seed=4), reasoner=dict(backend='scene', seed=4)))
    chains = bridge_run(cfg, tmp_path/'bridge')
    cold = filter_run(dict(truncate_reflection=True, reflection_keywords='extended'), tmp_path/'bridge', tmp_path/'filter')  # a bridge run dir is accepted
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
    paper = load_jsonl(filter_run(dict(truncate_reflection=True), tmp_path/'bridge', tmp_path/'filter-paper'))  # the report's 3 words
    assert not any('Wait' in r['response'] for r in paper) and any('Hmm,' in r['response'] or 'Alternatively,' in r['response'] for r in paper)

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


# OpenVLThinker's released SFT layout. The row is LLaMA-Factory sharegpt, as OpenVLThinker's SFT README documents its data
# (train/llama-factory/README.md@78ce312: {"messages": [{"content": "<image>User instruction", "role": "user"},
# {"content": "Model response", "role": "assistant"}], "images": [...]}, the format of ydeng9/OpenVLThinker-sft-iter3); the
# assistant turn is, byte for byte, the example completion of OpenVLThinker's reward function
# (train/easyr1/examples/reward_function/r1v.py@edb87c3, `predict_str` in its __main__; ground truth "15").
OVT_RESPONSE = ('<think>\n'
    'Okay, let me see. The question is asking for the difference in value between Magenta and Web Purple based on the bar chart described. \n'
    '\n'
    'First, I need to recall the details given about each bar. The Magenta bar goes up to 65 on the x-axis, and the Web Purple bar reaches 50. So, the x-axis is the value here, right? The y-axis is the categories, so the x-axis values are the actual numbers. \n'
    '\n'
    'To find the difference, I subtract the smaller value from the larger one. So that would be 65 minus 50. Let me do that calculation: 65 - 50 equals 15.\n'
    '</think>\n'
    '\n'
    'The Magenta bar reaches 65 on the x-axis, while the Web Purple bar reaches 50. The difference is calculated by subtracting the smaller value from the larger one: 65 − 50 = 15. \n'
    '\n'
    '<answer>15</answer>')
OVT_ROW = {"messages": [{"content": "<image>User instruction", "role": "user"}, {"content": OVT_RESPONSE, "role": "assistant"}],
           "images": ["path/to/your/image.jpg"]}

# Vision-R1's layout: an output of Vision-R1-7B printed in Fig. 4 of arXiv 2503.06749v4 (the "......" elisions are the
# paper's; text as extracted from the PDF), with its question and choices.
VR1_QUESTION = "As shown in the figure, AB parallel CD, EG bisects angle BEF, then angle 2 is equal to ()"
VR1_RESPONSE = ("<think> Okay, let's see. The problem displays that AB is parallel to CD, and EG bisects angle BEF. We need to find "
    "the measure of angle 2. First, the image displays......Wait, angle 1 is at point F, so......be supplementary to angle 1 "
    "because they are same-side interior angles. So angle BEF would be 180 - 50 = 130 degrees. Then, EG bisects angle BEF, so it "
    "splits angle BEF into two equal parts. Therefore, each of the angles formed by the bisector EG would be 130 / 2 = 65 degrees. "
    "Since angle 2 is one of those bisected angles, angle 2 should be 65 degrees. Looking at the choices, option C is 65°. So the "
    "answer should be C. </think><answer> Final Answer:C </answer>")


def test_openvlthinker_released_row_passes_the_filter_and_the_format_reward(tmp_path):
    (tmp_path/'path/to/your').mkdir(parents=True); __import__('PIL.Image').Image.new('RGB', (8, 8)).save(tmp_path/'path/to/your/image.jpg')
    (tmp_path/'ovt.json').write_text(json.dumps([OVT_ROW], ensure_ascii=False))
    rows = load_sharegpt(tmp_path/'ovt.json', source='openvlthinker-sft')
    assert rows[0]['response'] == OVT_RESPONSE and rows[0]['answer'] == '15'
    kept, rejected = filter_records(rows, layout='openvlthinker')
    assert [r['response'] for r in kept] == [OVT_RESPONSE] and not rejected
    assert openvlthinker_format_reward(None, [OVT_RESPONSE]) == [1.0]
    assert filter_records(rows)[1][0]['reject_reason'] == 'bad_format'      # the R1 layout drops its summary: rejected
    cut, _ = filter_records(rows, layout='openvlthinker', truncate_reflection=True, reflection_keywords=['Let me do'])
    p = LAYOUTS['openvlthinker'].parse(cut[0]['response'])                  # truncation keeps the summary and the answer
    assert p.think.endswith('So that would be 65 minus 50.') and p.summary.startswith('The Magenta bar') and p.answer == '15'


def test_vision_r1_layout_row_passes_its_filter():
    rec = _r(0, VR1_RESPONSE, answer='C', question=VR1_QUESTION, answer_type='multiple_choice', choices=['50°', '60°', '65°', '90°'])
    assert [r['id'] for r in filter_records([rec], layout='vision-r1')[0]] == ['r0']
    assert FormatReward('vision-r1')(None, [VR1_RESPONSE]) == [1.0]
    no_prefix = _r(1, VR1_RESPONSE.replace(' Final Answer:', ' '), answer='C', choices=['50°', '60°', '65°', '90°'])
    assert filter_records([no_prefix], layout='vision-r1')[1][0]['reject_reason'] == 'bad_format'
    with pytest.raises(ValueError, match="unknown layout 'vr1'"): filter_records([rec], layout='vr1')
    with pytest.raises(ValueError, match='unknown reflection keyword set'): filter_records([rec], reflection_keywords='r1')
