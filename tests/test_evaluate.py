"Contracts of vr1_nb.evaluate: protocols reach the backend, resume regenerates nothing, loaders for the released layouts, contamination on real MATH-V records, and `vr1 score` reproducing the harness's numbers."
import io, json, threading
from collections import Counter
from pathlib import Path
import pytest
from PIL import Image
from vr1_nb import synth
from vr1_nb.core import RecordError, format_question, load_config, save_jsonl
from vr1_nb.evaluate import *
from vr1_nb.generate import CallableBackend, Store, serve

BENCH = Path(__file__).resolve().parents[2]/'shared'/'benchmarks'

def _probs(n=6, seed=5):
    return synth.generate(n, seed=seed, split='test', mc_fraction=0.5)

def _right_or_wrong(problems, right):
    "A scripted model: the exact R1 solution for ids in `right`, a wrong but well-formed answer otherwise."
    by_id = {p['id']: p for p in problems}
    def fn(r):
        p = by_id[r.id]
        if r.id in right: return synth.r1_response(p)
        wrong = 'Z' if p['choices'] else str(int(p['answer']) + 7)
        return f"<think>guess</think><answer>{wrong}</answer>"
    return fn

# --- protocols and generation -------------------------------------------------------------------------------

@pytest.mark.parametrize('name,expect', [('vision-r1', (0.6, 0.95, 0, 1.0, 16000)), ('openvlthinker', (0.01, 0.001, 1, 1.0, 2048)),
                                         ('greedy', (0.0, 1.0, 0, 1.0, 1024))])
def test_protocol_params_reach_backend(tmp_path, name, expect):
    "Every decoding field of the protocol, stated in full (top-k and repetition penalty too), reaches the backend."
    seen = []
    be = CallableBackend(lambda r: seen.append(r.params) or '<answer>1</answer>', 'spy')
    evaluate(_probs(2), be, name, tmp_path/'run', progress=False, plots=False)
    assert {tuple(p[k] for k in ('temperature', 'top_p', 'top_k', 'repetition_penalty', 'max_tokens')) for p in seen} == {expect}

def test_openvlthinker_asks_the_benchmark_query(tmp_path):
    from vr1_nb.benchmarks import load_mathverse
    recs = load_mathverse(BENCH/'mathverse'/'testmini_text_only.json')[:2]; asked = []
    be = CallableBackend(lambda r: asked.append(r.messages[0]['content'][-1]['text']) or '<answer>A</answer>', 's')
    evaluate(recs, be, 'openvlthinker', tmp_path/'run', progress=False, plots=False)
    assert asked == [r['metadata']['query_cot'] for r in recs]
    asked.clear(); evaluate(recs, be, 'greedy', tmp_path/'run2', progress=False, plots=False)
    assert asked[0].startswith(recs[0]['question']) and asked[0].endswith('</answer> tags.')

def test_reask_counts_and_rescue(tmp_path):
    probs = _probs(3)
    calls = Counter()
    def fn(r):  # item 0: answers at once; item 1: closes its tag on the 3rd attempt; item 2: never does
        calls[r.id] += 1
        i = [p['id'] for p in probs].index(r.id)
        if i == 0 or (i == 1 and calls[r.id] == 3): return synth.r1_response(probs[i])
        return "<think>still thinking"
    sc = evaluate(probs, CallableBackend(fn, 's'), 'vision-r1', tmp_path/'run', progress=False, plots=False)
    assert (calls[probs[0]['id']], calls[probs[1]['id']], calls[probs[2]['id']]) == (1, 3, 5)
    assert (sc['correct'], sc['reask']['reasked'], sc['reask']['rescued'], sc['reask']['missing_answer_tag']) == (2, 2, 1, 1)
    assert 'non-standard' in sc['reask']['note'] and '2 of 3 samples re-asked' in sc['reask']['note']
    assert 'non-standard' in (tmp_path/'run'/'report.md').read_text()
    # a protocol without re-asks asks once
    calls.clear(); sc = evaluate(probs, CallableBackend(fn, 's'), 'greedy', tmp_path/'run2', progress=False, plots=False)
    assert set(calls.values()) == {1} and 'note' not in sc['reask']

def test_resume_after_transient_failure(tmp_path):
    probs = _probs(4); fail = {probs[2]['id']}; calls = Counter()
    def fn(r):
        calls[r.id] += 1
        if r.id in fail: raise ConnectionError("server went away")
        return synth.r1_response(probs[[p['id'] for p in probs].index(r.id)])
    with pytest.raises(RuntimeError, match="resume=True"):
        evaluate(probs, CallableBackend(fn, 'flaky'), 'greedy', tmp_path/'run', progress=False, plots=False)
    assert not (tmp_path/'run'/'COMPLETE').exists()
    with pytest.raises(FileExistsError, match="resume"):  # an unfinished run is never silently overwritten
        evaluate(probs, CallableBackend(fn, 'flaky'), 'greedy', tmp_path/'run', progress=False, plots=False)
    fail.clear(); calls.clear()
    sc = evaluate(probs, CallableBackend(fn, 'flaky'), 'greedy', tmp_path/'run', resume=True, progress=False, plots=False)
    assert dict(calls) == {probs[2]['id']: 1}   # only the failed request was asked again
    assert sc['correct'] == 4 and (tmp_path/'run'/'COMPLETE').exists()

def test_changed_protocol_does_not_reuse_answers(tmp_path):
    probs = _probs(2); seen = []
    be = CallableBackend(lambda r: seen.append(r.key) or '<answer>1</answer>', 's')
    with Store(tmp_path/'s.jsonl') as st:
        generate_responses(probs, be, resolve_protocol('greedy'), st, progress=False)
        generate_responses(probs, be, resolve_protocol({'protocol': 'greedy', 'max_new_tokens': 8}), st, progress=False)
    assert len(seen) == 4 and len(set(seen)) == 4

def test_k_samples_pass_at_k_and_majority(tmp_path):
    probs = synth.generate(4, seed=2, split='test', mc_fraction=0.0)
    def fn(r):  # problem i is right on samples < i (of 4), one fixed wrong answer otherwise
        i = [p['id'] for p in probs].index(r.id); p = probs[i]
        return synth.r1_response(p) if r.sample < i else f"<answer>{int(p['answer']) + 1}</answer>"
    sc = evaluate(probs, CallableBackend(fn, 's'), {'protocol': 'openvlthinker', 'k': 4}, tmp_path/'run', progress=False, plots=False)
    assert sc['pass_at_k']['pass@1'] == pytest.approx((0 + 1 + 2 + 3) / 16)
    assert sc['pass_at_k']['pass@4'] == pytest.approx(3 / 4)
    assert sc['pass_at_k']['pass@2'] == pytest.approx((0 + pass_at_k(4, 1, 2) + pass_at_k(4, 2, 2) + 1) / 4)
    # vote: problem 3 wins 3-1, problem 2 ties 2-2 and the tie goes to the first sample (right), 0 and 1 lose
    assert sc['majority']['correct'] == 2 and sc['mean_accuracy'] == pytest.approx(6 / 16)
    rows = [json.loads(l) for l in (tmp_path/'run'/'predictions.jsonl').read_text().splitlines()]
    assert [len(r['samples']) for r in rows] == [4] * 4 and rows[3]['majority_correct'] and rows[2]['majority_correct'] and not rows[1]['majority_correct']

def test_bad_input_errors_name_the_problem(tmp_path):
    p = _probs(2); p[1]['id'] = p[0]['id']
    with pytest.raises(RecordError, match=p[0]['id']):
        evaluate(p, CallableBackend(lambda r: '', 's'), 'greedy', tmp_path/'run', progress=False)
    with pytest.raises(ValueError, match="temprature"): resolve_protocol({'protocol': 'greedy', 'temprature': 0})
    save_jsonl(_probs(1), tmp_path/'x.jsonl')
    with pytest.raises(ValueError, match="no model"): eval_run({'eval': {}}, tmp_path/'x.jsonl', tmp_path/'r')

def test_unreadable_image_is_an_error_row_not_a_crash(tmp_path):
    p = _probs(2); p[0]['images'] = [str(tmp_path/'missing.png')]
    from vr1_nb.generate import BadInput, load_image
    def fn(r):
        for m in r.messages:
            for part in m['content']:
                if part.get('type') == 'image': load_image(part['image'])
        return synth.r1_response(p[1])
    sc = evaluate(p, CallableBackend(fn, 's'), 'greedy', tmp_path/'run', progress=False, plots=False)
    assert sc['errors'] == 1 and sc['correct'] == 1

# --- the LLM extractor through a real OpenAI-compatible server -----------------------------------------------

def test_llm_extractor_through_openai_server(tmp_path):
    probs = synth.generate(3, seed=9, split='test', mc_fraction=0.0)
    answers = {p['question']: p['answer'] for p in probs}
    def judge_fn(r):  # a 'GPT' that reads the query in the prompt and extracts the gold (what a good judge does)
        prompt = r.messages[-1]['content']; prompt = prompt if isinstance(prompt, str) else prompt[0]['text']
        return next(a for q, a in answers.items() if q in prompt)
    srv = serve(CallableBackend(judge_fn, 'judge'), port=0, block=False, model_name='gpt-judge')
    try:
        cfg = {'eval': {'protocol': 'greedy', 'judge': {'base_url': srv.base_url, 'model': 'gpt-judge'}}}
        save_jsonl(probs, tmp_path/'p.jsonl')
        free_text = CallableBackend(lambda r: "I believe it is the number I counted.", 'model')
        run = eval_run(cfg, tmp_path/'p.jsonl', tmp_path/'run', backend=free_text, progress=False)
    finally: srv.shutdown(); srv.server_close()
    sc = json.loads((run/'scores.json').read_text())
    rows = [json.loads(l) for l in (run/'predictions.jsonl').read_text().splitlines()]
    assert sc['correct'] == 3 and sc['extractor'] == 'gpt-judge' and srv.n_chat == 3
    assert all(r['extraction'] == r['answer'] for r in rows)

# --- loaders for the released sets -----------------------------------------------------------------------------

def _png_bytes(color):
    b = io.BytesIO(); Image.new('RGB', (16, 16), color).save(b, format='PNG'); return b.getvalue()

def test_easyr1_layout_from_parquet_with_embedded_images(tmp_path):
    import datasets
    from datasets import Features, Image as HFImage, Sequence, Value
    ds = datasets.Dataset.from_dict({'images': [[{'bytes': _png_bytes('red'), 'path': None}], [{'bytes': _png_bytes('blue'), 'path': None}]],
                                     'problem': ['<image>What is the area?', '<image>Which angle is larger?\nA. 30°\nB. 40°'],
                                     'answer': ['12', 'B']},
                                    features=Features({'images': Sequence(HFImage()), 'problem': Value('string'), 'answer': Value('string')}))
    ds.to_parquet(str(tmp_path/'vision_r1_rl.parquet'))
    recs = load_rl_set(tmp_path/'vision_r1_rl.parquet', source='vision-r1-rl')
    assert [r['answer_type'] for r in recs] == ['integer', 'multiple_choice']
    assert recs[1]['choices'] == ['30°', '40°'] and recs[1]['answer_text'] == '40°' and '<image>' not in recs[0]['question']
    assert recs[0]['images'][0].convert('RGB').getpixel((0, 0)) == (255, 0, 0) and recs[0]['source'] == 'vision-r1-rl'

def test_openvlthinker_grpo_and_r1v_layouts(tmp_path):
    Image.new('RGB', (16, 16), 'green').save(tmp_path/'img.png')
    (tmp_path/'grpo_medium.json').write_text(json.dumps([{'images': ['img.png'], 'problem': '<image>Find y.', 'answer': '\\boxed{5}'}]))
    (tmp_path/'clevr.jsonl').write_text(json.dumps({'image': 'img.png', 'problem': 'How many items are there in the image?', 'solution': '<answer> 3 </answer>'}) + '\n')
    (tmp_path/'geoqa.jsonl').write_text(json.dumps({'image': 'img.png', 'problem': 'As shown in the figure, find angle C.', 'solution': '<answer>145°</answer>'}) + '\n')
    g, c, q = load_rl_set(tmp_path/'grpo_medium.json'), load_rl_set(tmp_path/'clevr.jsonl'), load_rl_set(tmp_path/'geoqa.jsonl', layout='r1v')
    assert (g[0]['answer'], c[0]['answer'], q[0]['answer']) == ('5', '3', '145°')
    assert Path(c[0]['images'][0]) == tmp_path/'img.png' and c[0]['metadata']['layout'] == 'r1v'
    (tmp_path/'bad.jsonl').write_text(json.dumps({'id': 'x7', 'image': 'img.png', 'problem': 'p', 'solution': 'no tags'}) + '\n')
    with pytest.raises(RecordError, match="x7.*solution"): load_rl_set(tmp_path/'bad.jsonl')
    (tmp_path/'odd.jsonl').write_text(json.dumps({'prompt': 'p', 'target': '1'}) + '\n')
    with pytest.raises(ValueError, match="prompt"): load_rl_set(tmp_path/'odd.jsonl')
    with pytest.raises(FileNotFoundError, match="offline"): load_rl_set('Osilly/Vision-R1-rl')   # hub id: only with network

def test_mm_math_boxed_layout_evaluates(tmp_path):
    rows = [{'question': 'In triangle ABC, AB = 2. Find BC.', 'solution': 'By the law of sines ... $BC = \\boxed{\\sqrt{3}}$', 'file_name': None},
            {'question': 'Compute the area.', 'solution': 'area = 1/2 * 3 * 4 = \\boxed{6}', 'answer': '6'}]
    (tmp_path/'mm_math.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    recs = load_eval_data(tmp_path/'mm_math.jsonl')
    assert [r['answer'] for r in recs] == ['\\sqrt{3}', '6']
    be = CallableBackend(lambda r: "<think>..</think><answer>3^{1/2}</answer>" if r.id.endswith('0') else "\\boxed{6.0}", 's')
    sc = evaluate(recs, be, 'greedy', tmp_path/'run', progress=False, plots=False)
    assert sc['correct'] == 2   # sympy equivalence through math-verify

# --- contamination ---------------------------------------------------------------------------------------------

def test_contamination_finds_mathvision_testmini_in_a_training_set(tmp_path):
    from vr1_nb.benchmarks import load_mathvision
    bench = load_mathvision(BENCH/'mathvision'/'testmini.jsonl')
    planted = bench[10:15] + bench[100:103]
    rows = [{'images': [], 'problem': '<image>' + b['question'].replace('<image1>', '') + '\nAnswer the question.', 'answer': b['answer_text']} for b in planted]
    rows += [{'images': [], 'problem': format_question(p), 'answer': p['answer']} for p in synth.generate(30, seed=1, render=False)]
    (tmp_path/'rl.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    rep = contamination(load_rl_set(tmp_path/'rl.jsonl'), bench)
    assert rep['overlapping_ids'] == sorted(b['id'] for b in planted)
    assert rep['question_overlap'] == 8 and rep['image_overlap'] == 0 and rep['bench'] == 304
    assert rep['fraction'] == pytest.approx(8 / 304)
    clean = contamination(synth.generate(30, seed=1, render=False), bench)
    assert clean['any_overlap'] == 0

def test_contamination_by_image_survives_a_png_resave(tmp_path):
    train = synth.generate(4, seed=3, split='train')
    bench = synth.generate(4, seed=3, split='test')
    save_jsonl(train, tmp_path/'train.jsonl')   # written as PNG files, read back as paths
    from vr1_nb.core import load_jsonl
    reloaded = load_jsonl(tmp_path/'train.jsonl')
    bench[1] = dict(bench[1], images=[reloaded[2]['images'][0]], question='A different question about the same picture?')
    rep = contamination(train, bench)
    assert rep['image_overlap'] == 1 and rep['pairs'] == [{'bench': bench[1]['id'], 'train': train[2]['id'], 'by': 'image'}]

# --- Done when: `vr1 eval` writes what `vr1 score` reproduces ----------------------------------------------------

def _same_numbers(scores, official):
    assert (official['correct'], official['total']) == (scores['correct'], scores['total'])
    assert official['accuracy'] == pytest.approx(scores['accuracy'], abs=1e-4)

def test_eval_run_tiny_model_on_synth_reproduced_by_score_file(tmp_path):
    from vr1_nb.scoring import score_file
    save_jsonl(_probs(6, seed=11), tmp_path/'test.jsonl')
    cfg = load_config('smoke', ['eval.max_new_tokens=12', 'eval.n=4'])
    run = eval_run(cfg, tmp_path/'test.jsonl', tmp_path/'eval', progress=False)
    sc = json.loads((run/'scores.json').read_text())
    assert sc['total'] == 4 and sc['model'] == 'tiny-tiny' and sc['length_unit'] == 'tokens' and sc['benchmark'] == 'synth'
    rows = [json.loads(l) for l in (run/'predictions.jsonl').read_text().splitlines()]
    assert all(r['length'] <= 12 for r in rows) and {'id', 'response', 'prediction', 'correct'} <= set(rows[0])
    _same_numbers(sc, score_file('synth', run/'predictions.jsonl', tmp_path/'test.jsonl'))
    assert (run/'accuracy_by_source.png').stat().st_size > 1000 and (run/'length_hist.png').stat().st_size > 1000
    # resume of a finished run reuses it: no model call at all
    sc2 = json.loads((eval_run(cfg, tmp_path/'test.jsonl', tmp_path/'eval', backend=CallableBackend(lambda r: 1 / 0, 'x'), resume=True, progress=False)/'scores.json').read_text())
    assert sc2 == sc
    cfg2 = load_config('smoke', ['eval.max_new_tokens=20', 'eval.n=4'])   # a finished run under another protocol is not reused
    with pytest.raises(ValueError, match="another protocol"): eval_run(cfg2, tmp_path/'test.jsonl', tmp_path/'eval', backend=CallableBackend(lambda r: '', 'x'), resume=True, progress=False)

def test_scripted_synth_eval_reproduced_by_score_file(tmp_path):
    from vr1_nb.scoring import score_file
    probs = _probs(8, seed=12); save_jsonl(probs, tmp_path/'test.jsonl')
    right = {p['id'] for p in probs[::2]}
    run = eval_run({'eval': {'protocol': 'greedy'}}, tmp_path/'test.jsonl', tmp_path/'eval', backend=CallableBackend(_right_or_wrong(probs, right), 's'), progress=False)
    sc = json.loads((run/'scores.json').read_text())
    assert sc['correct'] == 4 and sc['total'] == 8
    _same_numbers(sc, score_file('synth', run/'predictions.jsonl', tmp_path/'test.jsonl'))

def test_mathverse_text_only_reproduced_by_score_file(tmp_path):
    from vr1_nb.scoring import score_file
    from vr1_nb.benchmarks import load_mathverse
    data = BENCH/'mathverse'/'testmini_text_only.json'
    recs = load_mathverse(data)[:12]
    # a scripted model: right in different styles on some problems, wrong or unanswered on others
    style = {r['id']: i % 4 for i, r in enumerate(recs)}
    def fn(r):
        rec = next(x for x in recs if x['id'] == r.id); s = style[r.id]
        if s == 0: return f"<think>...</think><answer>{rec['answer']}</answer>"
        if s == 1: return f"Let me think. The answer is \\boxed{{{rec['answer']}}}."
        if s == 2: return "<think>I am not sure</think><answer>Z</answer>"
        return "I cannot see the figure."
    run = eval_run({'eval': {'protocol': 'openvlthinker', 'n': 12}}, data, tmp_path/'eval', backend=CallableBackend(fn, 'scripted'), progress=False)
    sc = json.loads((run/'scores.json').read_text())
    assert sc['benchmark'] == 'mathverse' and sc['total'] == 12 and sc['correct'] == 6
    _same_numbers(sc, score_file('mathverse', run/'predictions.jsonl', data))

def test_every_preset_eval_section_resolves():
    from vr1_nb.core import list_presets
    for name in list_presets():
        ev = {k: v for k, v in (load_config(name).get('eval') or {}).items() if k not in ('n', 'benchmark', 'judge', 'backend', 'batch_size', 'plots')}
        p = resolve_protocol(ev)
        assert p['max_tokens'] >= 8, name
    vr1 = resolve_protocol({k: v for k, v in load_config('vision-r1-7b')['eval'].items()})
    assert (vr1['temperature'], vr1['top_p'], vr1['reask']) == (0.6, 0.95, 4) and vr1['max_tokens'] >= 16000

def test_contamination_run_between_files(tmp_path):
    rows = [{'images': [], 'problem': '<image>The kangaroo is inside how many circles?', 'answer': '3'},
            {'images': [], 'problem': 'An unrelated training problem about apples and oranges.', 'answer': '2'}]
    (tmp_path/'rl.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    rep = contamination_run(tmp_path/'rl.jsonl', BENCH/'mathvision'/'testmini.jsonl', out=tmp_path/'rep.json')
    assert rep['overlapping_ids'] == ['32'] and json.loads((tmp_path/'rep.json').read_text())['bench'] == 304

def test_mathvista_with_llm_extraction_reproduced_by_score_file(tmp_path):
    "MathVista's official path: an LLM extracts from free text, the official normalisation scores; `vr1 score` agrees from the stored extraction."
    from vr1_nb.scoring import score_file
    from vr1_nb.benchmarks import load_mathvista
    data = BENCH/'mathvista'/'testmini.json'
    recs = [r for r in load_mathvista(data) if not r['choices']][:9]   # free-form: a wrong extraction cannot land on the right option
    by_query = {r['question'].strip()[:80]: (i, r) for i, r in enumerate(recs)}   # the shared file has no `query`: the question is asked
    def judge(r):  # right on every third problem, a wrong extraction on the next, nothing on the last
        prompt = r.messages[-1]['content']
        i, rec = next(v for q, v in by_query.items() if q in prompt)
        return [rec['answer'] if rec['choices'] else rec['answer_text'], 'certainly not this', ''][i % 3]
    model = CallableBackend(lambda r: "After looking carefully, I would go with my first impression here.", 'm')
    sc = evaluate(recs, model, 'greedy', tmp_path/'run', benchmark='mathvista', judge=CallableBackend(judge, 'gpt-judge'), progress=False, plots=False)
    assert sc['correct'] == 3 and sc['extractor'] == 'gpt-judge'
    rows = [json.loads(l) for l in (tmp_path/'run'/'predictions.jsonl').read_text().splitlines()]
    assert all('extraction' in r for r in rows)
    _same_numbers(sc, score_file('mathvista', tmp_path/'run'/'predictions.jsonl', data))

def test_eval_run_against_an_openai_compatible_server_with_images(tmp_path):
    "eval.backend {kind: openai}: images travel as data URLs, the protocol's sampling parameters reach the server."
    probs = synth.generate(4, seed=13, split='test', mc_fraction=0.0); save_jsonl(probs, tmp_path/'p.jsonl')
    seen = []
    def model(r):
        imgs = [p for m in r.messages if isinstance(m['content'], list) for p in m['content'] if p.get('type') != 'text']
        seen.append((len(imgs), r.params.get('temperature'), r.params.get('top_p'), r.params.get('max_tokens')))
        text = r.messages[-1]['content'][-1]['text']
        gold = next(p['answer'] for p in probs if p['question'] in text)
        return f"<think>read it</think><answer>{gold}</answer>"
    srv = serve(CallableBackend(model, 'srv'), port=0, block=False, model_name='served-vlm')
    try:
        cfg = {'model': {'path': 'unused'}, 'eval': {'protocol': 'vision-r1', 'max_new_tokens': 64, 'backend': {'kind': 'openai', 'base_url': srv.base_url, 'model': 'served-vlm'}}}
        run = eval_run(cfg, tmp_path/'p.jsonl', tmp_path/'run', progress=False)
    finally: srv.shutdown(); srv.server_close()
    sc = json.loads((run/'scores.json').read_text())
    assert sc['correct'] == 4 and sc['model'] == 'served-vlm' and set(seen) == {(1, 0.6, 0.95, 64)}
    with pytest.raises(ValueError, match="no problems"):
        evaluate([], CallableBackend(lambda r: '', 's'), 'greedy', tmp_path/'empty', progress=False)

def test_vr1_eval_then_vr1_score_from_the_command_line(tmp_path, capsys):
    "The Done-when as a user types it: `vr1 eval` on synth and on MathVerse text-only, `vr1 score` reproduces both."
    from vr1_nb.cli import main
    save_jsonl(_probs(5, seed=17), tmp_path/'test.jsonl')
    mathverse = BENCH/'mathverse'/'testmini_text_only.json'
    for data, bench, n in ((tmp_path/'test.jsonl', 'synth', 5), (mathverse, 'mathverse', 3)):
        out = tmp_path/f'eval-{bench}'
        main(['eval', '-c', 'smoke', '--set', f'eval.n={n}', '--set', 'eval.max_new_tokens=6', '-d', str(data), '-o', str(out)])
        assert capsys.readouterr().out.strip().endswith(str(out))
        main(['score', '-b', bench, '-p', str(out/'predictions.jsonl'), '-d', str(data), '--compact'])
        _same_numbers(json.loads((out/'scores.json').read_text()), json.loads(capsys.readouterr().out))
    main(['eval', '--contamination', str(tmp_path/'test.jsonl'), '-d', str(BENCH/'mathvision'/'testmini.jsonl'), '-o', str(tmp_path/'c.json')])
    assert json.loads((tmp_path/'c.json').read_text())['bench'] == 304

def test_mathverse_two_stage_judge_from_scoring(tmp_path):
    "eval.judge on MathVerse uses vr1_nb.scoring's official extract-then-judge prompts through an OpenAI-compatible endpoint."
    import re
    from vr1_nb.benchmarks import load_mathverse
    data = BENCH/'mathverse'/'testmini_text_only.json'
    recs = load_mathverse(data)[:4]
    prompts = []
    def gpt(r):
        p = r.messages[-1]['content']; p = p if isinstance(p, str) else p[0]['text']; prompts.append(p)
        if 'Judgement' in p:
            std, ext = re.search(r'\[Standard Answer\]: (.*)', p).group(1), re.search(r'\[Model_answer\]: (.*)', p).group(1)
            return '1' if std.strip() == ext.strip() else '0'
        m = re.search(r'my answer is (\w+)', p); return m.group(1) if m else ''
    srv = serve(CallableBackend(gpt, 'gpt'), port=0, block=False, model_name='gpt-4o-mini')
    try:
        model = CallableBackend(lambda r: f"Hmm... my answer is {next(x for x in recs if x['id'] == r.id)['answer'] if r.id in (recs[0]['id'], recs[2]['id']) else 'Q'}", 'm')
        run = eval_run({'eval': {'protocol': 'greedy', 'n': 4, 'judge': {'base_url': srv.base_url, 'model': 'gpt-4o-mini'}}}, data, tmp_path/'run', backend=model, progress=False)
    finally: srv.shutdown(); srv.server_close()
    sc = json.loads((run/'scores.json').read_text())
    assert sc['correct'] == 2 and sc['extractor'] == 'mathverse-judge:gpt-4o-mini'
    assert sum('Judgement' in p for p in prompts) == 4 and len(prompts) == 8   # one extraction and one judgement per answer

# --- decoding stated in full, and who answers at scale (issue 15, items 4 and 5) -----------------------------------

def _old_tag(p):
    "protocol_version before top-k and repetition penalty were stated: the tag existing stores were keyed with."
    import hashlib
    blob = json.dumps({k: p.get(k) for k in ('instruction', 'prompt', 'temperature', 'top_p', 'max_tokens')}, sort_keys=True)
    return f"{p.get('name', 'custom')}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"

def test_greedy_stores_keep_their_keys_sampled_ones_do_not():
    "Greedy decoding of a checkpoint without top-k/penalty is what it was, so its stores resume; sampled answers took top-k 50 or 1."
    for spec in ('greedy', {'protocol': 'greedy', 'max_new_tokens': 96, 'instruction': ''}, load_config('smoke')['eval']):
        p = resolve_protocol({k: v for k, v in spec.items() if k != 'n'} if isinstance(spec, dict) else spec)
        assert protocol_version(p) == _old_tag(p)
    for spec in ('vision-r1', 'openvlthinker', {'protocol': 'greedy', 'repetition_penalty': 1.05}):
        p = resolve_protocol(spec); assert protocol_version(p) != _old_tag(p)
    with pytest.raises(ValueError, match=r"eval protocol 'greedy'.*repetition_penalty"): resolve_protocol({'protocol': 'greedy', 'repetition_penalty': 0})

def test_gpu_presets_evaluate_with_vllm_cpu_presets_with_hf():
    from vr1_nb.core import list_presets
    for name in list_presets():
        cfg = load_config(name); gpu = (cfg.get('hardware') or {}).get('num_gpus', 0) > 0
        kind = ((cfg.get('eval') or {}).get('backend') or {}).get('kind', 'hf')
        assert kind == ('vllm' if gpu else 'hf'), name

def _fake_vllm(monkeypatch):
    "A stand-in `vllm` module recording `LLM` construction and `chat` calls (vLLM itself needs CUDA)."
    import sys, types
    seen = dict(init=[], chat=[])
    class LLM:
        def __init__(self, model, **kw): seen['init'].append(dict(model=model, **kw))
        def chat(self, messages, sampling_params, use_tqdm=True):
            seen['chat'].append(sampling_params)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=seen['answer'](m))]) for m in messages]
    monkeypatch.setitem(sys.modules, 'vllm', types.SimpleNamespace(SamplingParams=lambda **kw: kw, LLM=LLM))
    return seen

def test_eval_run_with_the_vllm_backend_submits_every_problem_at_once(tmp_path, monkeypatch):
    probs = _probs(5, seed=21); save_jsonl(probs, tmp_path/'p.jsonl')
    seen = _fake_vllm(monkeypatch)
    from vr1_nb.generate import image_to_data_url   # vLLM sees the image as a data URL: it tells the problems apart
    by_image = {image_to_data_url(p['images'][0]): p for p in load_eval_data(tmp_path/'p.jsonl')}
    seen['answer'] = lambda m: synth.r1_response(by_image[m[-1]['content'][0]['image_url']['url']])
    cfg = {'model': {'path': 'Qwen/Qwen2.5-VL-7B-Instruct'},
           'eval': dict(load_config('vision-r1-7b')['eval'], max_new_tokens=64, backend={'kind': 'vllm', 'max_model_len': 4096})}
    sc = json.loads((eval_run(cfg, tmp_path/'p.jsonl', tmp_path/'run', progress=False)/'scores.json').read_text())
    assert sc['correct'] == 5 and len(seen['chat']) == 1 and len(seen['chat'][0]) == 5
    assert seen['init'] == [dict(model='Qwen/Qwen2.5-VL-7B-Instruct', max_model_len=4096)]
    assert {(s['temperature'], s['top_p'], s['top_k'], s['repetition_penalty'], s['max_tokens']) for s in seen['chat'][0]} == {(0.6, 0.95, -1, 1.0, 64)}

def test_make_eval_backend_chooses_by_kind_and_device(monkeypatch):
    from vr1_nb import models, evaluate as E
    from vr1_nb.generate import HFBackend, OpenAIBackend
    be = make_eval_backend('tiny:tiny', {'protocol': 'greedy', 'max_new_tokens': 8, 'backend': 'vllm'})   # a GPU preset rehearsed on CPU
    assert isinstance(be, HFBackend) and be.model.device.type == 'cpu' and be.max_tokens == 8
    oa = make_eval_backend('m', {'backend': {'kind': 'openai', 'base_url': 'http://127.0.0.1:9/v1', 'server': 'vllm'}, 'max_new_tokens': 32})
    assert isinstance(oa, OpenAIBackend) and (oa.server, oa.max_tokens, oa.model) == ('vllm', 32, 'm')
    with pytest.raises(ValueError, match='needs base_url'): make_eval_backend('m', {'backend': {'kind': 'openai'}})
    loaded, tiny = [], models.get_tiny_model()
    monkeypatch.setattr(models, 'load_model', lambda path, **kw: loaded.append(kw) or tiny)
    monkeypatch.setattr(E, '_cuda', lambda: True)   # a GPU box: the checkpoint goes on the GPU unless the config places it
    make_eval_backend('/ckpt/qwen', {}, {'dtype': 'bfloat16'}); make_eval_backend('/ckpt/qwen', {}, {'device_map': 'auto'})
    assert loaded == [dict(dtype='bfloat16', device_map='cuda'), dict(device_map='auto')]

def _recording_vllm(monkeypatch, events):
    "A stand-in `vllm` whose engines answer '<answer>1</answer>' and record when they are built, freed and torn down."
    import sys, types
    class LLM:
        def __init__(self, model, **kw): events.append('engine')
        def __del__(self): events.append('engine freed')
        def chat(self, messages, sampling_params, use_tqdm=True):
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text='<answer>1</answer>')]) for _ in messages]
    ps = types.ModuleType('vllm.distributed.parallel_state')
    ps.destroy_model_parallel, ps.destroy_distributed_environment = lambda: events.append('torn down'), lambda: None
    monkeypatch.setitem(sys.modules, 'vllm', types.SimpleNamespace(SamplingParams=lambda **kw: kw, LLM=LLM))
    monkeypatch.setitem(sys.modules, 'vllm.distributed', types.SimpleNamespace(parallel_state=ps))
    monkeypatch.setitem(sys.modules, 'vllm.distributed.parallel_state', ps)

def test_eval_suite_frees_each_engine_before_the_next(tmp_path, monkeypatch):
    "One vLLM engine per test set, each released (VLLMBackend.close) before the next; a caller's backend stays open."
    events = []
    _recording_vllm(monkeypatch, events)
    for i, name in enumerate('ab'): save_jsonl(_probs(2, seed=i), tmp_path/f'{name}.jsonl')
    cfg = {'model': {'path': 'Qwen/Qwen2.5-VL-7B-Instruct'}, 'data': {'task': 'a', 'test': {
               'a': str(tmp_path/'a.jsonl'), 'b': str(tmp_path/'b.jsonl')}},
           'eval': {'protocol': 'greedy', 'max_new_tokens': 8, 'backend': {'kind': 'vllm'}}}
    eval_suite(cfg, tmp_path/'suite', progress=False)
    assert events == ['engine', 'engine freed', 'torn down'] * 2
    mine = CallableBackend(lambda r: '<answer>1</answer>', 'mine'); mine.close = lambda: events.append('closed mine')
    eval_run(cfg, tmp_path/'a.jsonl', tmp_path/'given', backend=mine, progress=False)
    assert events[-1] == 'torn down'                                    # the caller closes what it built
