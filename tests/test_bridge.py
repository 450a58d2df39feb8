"Contracts of vr1_nb.bridge: kill -9 + resume gives the same dataset, loaders for released formats, bad input, teacher errors."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from PIL import Image
from vr1_nb import synth
from vr1_nb.core import load_jsonl, RecordError
from vr1_nb.generate import Store
from vr1_nb.bridge import *

REPO = Path(__file__).resolve().parents[1]
NOERR = {k: 0 for k in SCENE_ERRORS}

_RUN = textwrap.dedent("""
    import sys
    from vr1_nb.bridge import bridge_run
    cfg = dict(method=sys.argv[3], k=2, synth=dict(n=8, seed=5), progress=False,
               teachers=dict(mllm=dict(backend='scene', seed=1, latency=float(sys.argv[2])),
                             reasoner=dict(backend='scene', seed=1, latency=float(sys.argv[2]))))
    print(bridge_run(cfg, sys.argv[1], resume=True))
""")

def _bridge(out, latency, method='vision_r1', **kw):
    return subprocess.Popen([sys.executable, '-c', _RUN, str(out), str(latency), method], cwd=REPO, **kw)

def _dataset(run):
    "chains.jsonl text plus the bytes of every image it points to."
    p = Path(run)/'chains.jsonl'
    return p.read_text(), {f.name: f.read_bytes() for f in sorted((Path(run)/'chains_images').glob('*.png'))}

@pytest.mark.parametrize('method', ['vision_r1', 'openvlthinker'])
def test_bridge_killed_mid_run_resumes_to_the_same_dataset(tmp_path, method):
    assert _bridge(tmp_path/'full', 0, method).wait() == 0
    p = _bridge(tmp_path/'killed', 0.03, method)
    gen = tmp_path/'killed'/'generations.jsonl'; deadline = time.time() + 60
    while time.time() < deadline and not (gen.exists() and gen.read_bytes().count(b'\n') >= 12): time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert not (tmp_path/'killed'/'chains.jsonl').exists(), "the run must be killed before it finished"
    done_before = gen.read_bytes().count(b'\n')
    assert _bridge(tmp_path/'killed', 0, method).wait() == 0
    keys = [json.loads(l)['key'] for l in gen.read_text().splitlines()]
    assert len(keys) == len(set(keys)) > done_before  # resumed, no duplicate generations
    assert _dataset(tmp_path/'killed') == _dataset(tmp_path/'full')
    assert (tmp_path/'killed'/'COMPLETE').exists()
    ids = [r['id'] for r in load_jsonl(tmp_path/'killed'/'chains.jsonl')]
    assert len(ids) == len(set(ids)) == (16 if method == 'vision_r1' else 8)

def test_scene_teacher_errors_make_wrong_answers_and_pseudo_paths(tmp_path):
    probs = synth.generate(40, seed=2, render=False)
    st = SceneTeacher(probs, errors=dict(NOERR, miss=0.4, misread=0.4, wrong_step=0.3), seed=0)
    with Store(tmp_path/'g.jsonl') as s: rows = vision_r1_bridge(probs, st, st, s, progress=False)
    wrong = [r for r in rows if not r['verdict']]
    pseudo = [r for r in rows if r['verdict'] and (r['metadata']['teacher_diagnostics']['caption_errors']
                                                    or 'wrong_step' in r['metadata']['teacher_diagnostics']['reasoning_errors'])]
    assert wrong and pseudo  # both kinds of error occur: answer checking removes the first, not the second
    assert all(r['metadata']['teacher_diagnostics']['answer_changed'] for r in wrong)
    st0 = SceneTeacher(probs, errors=NOERR)
    with Store(tmp_path/'h.jsonl') as s: assert all(r['verdict'] for r in vision_r1_bridge(probs, st0, st0, s, progress=False))

def test_concise_style_and_misquery_are_systematic(tmp_path):
    probs = synth.generate(60, seed=4, render=False)
    st = SceneTeacher(probs, errors=dict(NOERR, misquery=1.0), seed=0, style='concise')
    full = SceneTeacher(probs, errors=NOERR, seed=0)
    with Store(tmp_path/'g.jsonl') as s: rows = vision_r1_bridge(probs, st, st, s, progress=False)
    with Store(tmp_path/'h.jsonl') as s: rows_full = vision_r1_bridge(probs, full, full, s, progress=False)
    for r, rf, p in zip(rows, rows_full, probs):
        mis = 'misquery' in r['metadata']['teacher_diagnostics']['caption_errors']
        assert mis == (misquery(p) is not None)  # rate 1: every question with a near misreading is misread
        if mis:  # the chain answers the misread query, which the generator's solver recomputes independently
            q = misquery(p); val = synth.scene_answer({**p, 'metadata': {**p['metadata'], 'query': q}})
            if not p['choices']: assert r['pred'] == str(val)
            if str(val) != str(synth.scene_answer(p)) and not p['choices']: assert not r['verdict']
        else: assert r['verdict']
        assert 'Let me read the description' not in r['response'] and len(r['response']) < len(rf['response'])
    assert sum('misquery' in r['metadata']['teacher_diagnostics']['caption_errors'] for r in rows) >= 20
    with pytest.raises(ValueError, match='style'): SceneTeacher(probs, style='verbose')

def test_unreadable_image_and_refusals_are_rejected_not_kept(tmp_path):
    probs = synth.generate(4, seed=0)
    (tmp_path/'bad.png').write_bytes(b'not an image'); probs[1]['images'] = [str(tmp_path/'bad.png')]
    st = SceneTeacher(probs, errors=dict(NOERR, refusal=1.0))
    with Store(tmp_path/'g.jsonl') as s: rows = vision_r1_bridge(probs, st, st, s, progress=False)
    assert 'unreadable image' in rows[1]['reject_reason'] and rows[1]['response'] is None
    assert all(r['verdict'] is False and r['pred'] is None for r in rows if r['reject_reason'] is None)  # refusals carry no answer

REFL_OURS, REFL_PAPER = ('Wait,', 'Hmm,', 'Alternatively,', 'But wait,'), ('Wait,', 'But wait,')

def test_openvlthinker_selects_shortest_or_longest_and_truncates(tmp_path):
    probs = synth.generate(12, seed=3, render=False)
    st = SceneTeacher(probs, errors=dict(NOERR, reflect=0.5, wrong_step=0.5))
    with Store(tmp_path/'g.jsonl') as s:
        run = lambda **kw: openvlthinker_distill(probs, st, st, s, k=4, progress=False, **kw)
        short, long_ = run(select='shortest', truncate_reflection=False), run(select='longest', truncate_reflection=False)
        cut, cut_paper = run(select='longest', reflection_keywords='extended'), run(select='longest')
        cut_before = run(select='longest', reflection_keywords='extended', truncate_order='before_select')
    assert all(len(a['response']) <= len(b['response']) for a, b in zip(short, long_))
    assert any(len(a['response']) < len(b['response']) for a, b in zip(short, long_))
    refl = lambda r, kws: any(k in r['response'] for k in kws)
    assert any(refl(r, REFL_OURS) for r in long_) and not any(refl(r, REFL_OURS) for r in cut + cut_before)
    assert not any(refl(r, REFL_PAPER) for r in cut_paper) and any(refl(r, ('Hmm,', 'Alternatively,')) for r in cut_paper)
    for c, l in zip(cut, long_):  # the report's order: the longest chain as generated is chosen, then cut
        assert c['metadata']['bridge']['sample'] == l['metadata']['bridge']['sample']
        assert c['response'] == (truncate_target(l['response'], 'r1', 'extended') or l['response'])
    assert all(r['response'].endswith(f"<answer>{r['answer']}</answer>") for r in cut + cut_before + cut_paper)
    with pytest.raises(ValueError, match="truncate_order='first'"): run(truncate_order='first')


def _fake_model(probs):
    "A stand-in RL model writing OpenVLThinker's layout: sample s thinks s+1 sentences, then a summary, then the gold."
    from vr1_nb.generate import CallableBackend
    gold = {p['id']: p['answer'] for p in probs}
    think = lambda s: ' '.join(['I count the objects again.'] * (s + 1))
    return CallableBackend(lambda r: dict(texts=[f"<think>\n{think(r.sample)}\n</think>\n\nSo the answer is {gold[r.id]}.\n\n"
                                                 f"<answer>{gold[r.id]}</answer>"] * r.n), 'rl-model')


def test_rejection_sampling_keeps_the_models_layout_and_the_repos_selection(tmp_path):
    probs = synth.generate(5, seed=6, render=False); model = _fake_model(probs)
    with Store(tmp_path/'g.jsonl') as s:
        ovt = rejection_sample(model, probs, s, k=4, layout='openvlthinker', progress=False)
        r1 = rejection_sample(model, probs, s, k=4, progress=False)
        repo = rejection_sample(model, probs, s, k=4, layout='openvlthinker', select='drop_longest', progress=False)
    from vr1_nb.rewards import LAYOUTS, openvlthinker_format_reward, format_reward
    assert [LAYOUTS['openvlthinker'].parse(r['response']).summary for r in ovt] == [f"So the answer is {p['answer']}." for p in probs]
    assert openvlthinker_format_reward(None, [r['response'] for r in ovt]) == [1.0] * 5
    assert format_reward(None, [r['response'] for r in r1]) == [1.0] * 5 and all('So the answer' not in r['response'] for r in r1)
    assert [r['metadata']['bridge']['sample'] for r in ovt] == [0] * 5        # the shortest correct (report §4.1)
    assert [r['metadata']['bridge']['sample'] for r in repo] == [2] * 5       # drop the longest, keep the next (repo)


def test_vision_r1_layout_targets_are_read_back(tmp_path):
    from vr1_nb.rewards import LAYOUTS, hard_format_reward, HardFormatReward
    probs = synth.generate(8, seed=9, render=False)
    st = SceneTeacher(probs, errors=NOERR)
    with Store(tmp_path/'g.jsonl') as s: rows = vision_r1_bridge(probs, st, st, s, layout='vision-r1', progress=False)
    assert all(r['verdict'] and r['response'].endswith(f"<answer> Final Answer:{r['pred']} </answer>") for r in rows)
    golds = dict(answer=[r['answer'] for r in rows], choices=[r['choices'] or None for r in rows])
    assert HardFormatReward('vision-r1')(None, [r['response'] for r in rows], **golds) == [1.0] * 8
    assert hard_format_reward(None, [r['response'] for r in rows], **golds) == [1.0] * 8   # R1's rule reads 'Final Answer:X' as X
    r1_targets = [LAYOUTS['r1'].write('t', r['pred']) for r in rows]
    assert HardFormatReward('vision-r1')(None, r1_targets, **golds) == [0.0] * 8           # but Vision-R1's needs its prefix


def test_rejection_sampling_returns_only_verified_sft_records(tmp_path):
    probs = synth.generate(10, seed=4)
    st = SceneTeacher(probs, errors=dict(NOERR, slip=0.5, miss=0.3))
    with Store(tmp_path/'g.jsonl') as s:
        kept, rej = rejection_sample(st, probs, s, k=3, round=2, return_rejected=True, progress=False)
        assert len(s) == 30 and all(k.split('|')[1] == 'rs2' for k in s.keys())
    assert kept and len(kept) + len(rej) == 10
    assert all(r['verdict'] and r['response'].endswith(f"<answer>{r['answer']}</answer>") for r in kept)
    assert all(r['reject_reason'] == 'no_correct_sample' and r['metadata']['n_correct'] == 0 for r in rej)

def test_sharegpt_and_openvlthinker_loaders(tmp_path):
    Image.new('RGB', (8, 8), 'red').save(tmp_path/'a.png')
    v1 = [{"id": "x1", "conversations": [{"from": "system", "value": "Be careful."}, {"from": "human", "value": "<image>\nWhat is 2+2?"},
                                        {"from": "gpt", "value": "<think>2+2=4</think>\n<answer>4</answer>"}], "image": "a.png"}]
    v2 = [{"messages": [{"role": "user", "content": "<image>Which?"}, {"role": "assistant", "content": "So the answer is \\boxed{B}."}], "images": ["a.png"]}]
    (tmp_path/'v1.json').write_text(json.dumps(v1)); (tmp_path/'v2.jsonl').write_text(json.dumps(v2[0]) + '\n')
    a, b = load_sharegpt(tmp_path/'v1.json'), load_sharegpt(tmp_path/'v2.jsonl', source='x')
    assert (a[0]['id'], a[0]['question'], a[0]['answer'], a[0]['answer_type']) == ('x1', 'What is 2+2?', '4', 'integer')
    assert a[0]['response'].startswith('<think>') and Image.open(a[0]['images'][0]).size == (8, 8)
    assert (b[0]['id'], b[0]['answer'], b[0]['source'], b[0]['images']) == ('v2-000000', 'B', 'x', [str(tmp_path/'a.png')])
    (tmp_path/'bad.json').write_text(json.dumps([{"conversations": [{"from": "robot", "value": "hi"}]}]))
    with pytest.raises(RecordError, match=r"bad\.json\[0\].*robot|robot"): load_sharegpt(tmp_path/'bad.json')
    import datasets, io
    buf = io.BytesIO(); Image.new('RGB', (6, 6), 'blue').save(buf, format='PNG')
    rows = [{"image": {"bytes": buf.getvalue(), "path": None}, "problem": "<image>How many?", "solution": "<think>1+2</think><answer>3</answer>"}]
    datasets.Dataset.from_list(rows).cast_column('image', datasets.Image()).to_parquet(str(tmp_path/'ovl.parquet'))
    (tmp_path/'ovl.json').write_text(json.dumps([{"image": "a.png", "question": "Q?", "response": "r", "answer": "7"}]))
    c, d = load_openvlthinker(tmp_path/'ovl.parquet'), load_openvlthinker(tmp_path/'ovl.json')
    assert (c[0]['question'], c[0]['answer'], c[0]['images'][0].size) == ('How many?', '3', (6, 6))
    assert (d[0]['answer'], d[0]['metadata']['answer_from'], d[0]['images']) == ('7', 'answer', [str(tmp_path/'a.png')])

def test_bridge_config_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown key.*'teacher'"): bridge_run(dict(teacher={}), tmp_path/'a')
    with pytest.raises(ValueError, match="'problems'.*'synth'"): bridge_run(dict(progress=False), tmp_path/'b')
    with pytest.raises(ValueError, match="teacher backend 'gpt'"): bridge_run(dict(synth=dict(n=2), teachers=dict(mllm=dict(backend='gpt'), reasoner={})), tmp_path/'c')
    for key, bad, msg in [('layout', 'R1', "unknown layout 'R1'"), ('select', 'best', "select='best'"), ('method', 'r1v', "method='r1v'"),
                          ('caption_prompt', 'none', "caption_prompt='none'"), ('truncate_order', 'never', "truncate_order='never'"),
                          ('reflection_keywords', 'all', 'unknown reflection keyword set')]:
        with pytest.raises(ValueError, match=msg): bridge_run(dict(synth=dict(n=2), progress=False, **{key: bad}), tmp_path/key)
        assert not (tmp_path/key).exists()   # refused before anything was generated or written

def test_failing_teacher_leaves_the_run_incomplete_and_resume_finishes_it(tmp_path):
    from vr1_nb.generate import CallableBackend
    probs = synth.generate(4, seed=0, render=False)
    st, down = SceneTeacher(probs, errors=NOERR), {probs[2]['id']}
    def flaky(r):
        if r.id in down: raise ConnectionError('teacher down')
        return st._answer(r)
    be = CallableBackend(flaky, 'flaky')
    cfg = dict(synth=dict(n=4, seed=0, render=False), teachers=dict(mllm=be, reasoner=be), progress=False)
    rows = load_jsonl(bridge_run(cfg, tmp_path/'run'))
    assert [r['reject_reason'] for r in rows] == [None, None, 'teacher_unavailable', None]  # rejected with a reason, run continued
    assert not (tmp_path/'run'/'COMPLETE').exists()
    down.clear()
    rows = load_jsonl(bridge_run(cfg, tmp_path/'run', resume=True))
    assert all(r['verdict'] for r in rows) and (tmp_path/'run'/'COMPLETE').exists()
