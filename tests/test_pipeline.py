"The smoke demo end to end: every stage's output exists, and the report's numbers are recomputed from the predictions."
import json, re
from pathlib import Path
import pytest
from vr1_nb.answers import verify_completions

EVALS = {'base': 'eval-base', 'cold start (SFT)': 'eval-sft', 'SFT + grpo': 'eval-grpo'}

@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    import os
    from vr1_nb.pipeline import demo_run
    out = tmp_path_factory.mktemp('demo')
    os.environ['VR1_CACHE'] = str(out/'cache')   # the base model is pre-trained here, not taken from a user's cache
    rep = demo_run('smoke', out/'run', progress=False)
    return out/'run', rep

def _rescore(pred_file):
    "Score a predictions file independently of the harness: extract + verify each response."
    rows = [json.loads(l) for l in Path(pred_file).read_text().splitlines() if l.strip()]
    ok = verify_completions([r['response'] for r in rows], [r['answer'] for r in rows], [r.get('choices') or None for r in rows])
    return sum(map(bool, ok)), len(rows)

def test_every_stage_output_exists(demo):
    run, rep = demo
    for f in ('data/train.jsonl', 'data/rl.jsonl', 'data/test.jsonl', 'bridge/chains.jsonl', 'filter/cold_start.jsonl',
              'filter/rejected.jsonl', 'sft/final/config.json', 'grpo/final/config.json', 'grpo/log.jsonl'):
        assert (run/f).exists(), f
    for d in ('data', 'bridge', 'filter', 'sft', 'grpo', *EVALS.values()):
        assert (run/d/'COMPLETE').exists(), f"stage {d} not marked complete"
        assert (run/d/'predictions.jsonl').exists() or not d.startswith('eval'), d
    for f in ('report.md', 'report.html', 'report.json', 'config.yaml', 'versions.json', 'accuracy.png', 'filter_yield.png',
              'grpo/reward_length.png', 'grpo/beta.png'):
        assert (rep/f).stat().st_size > 0, f
    base = Path(json.loads((run/'sft'/'manifest.json').read_text())['config']['model']['path'])
    assert (base/'config.json').exists() and 'base' in str(base)   # SFT started from the pre-trained, cached base

def test_base_pretraining_trains_the_vision_tower(demo):
    "From random weights the encoder must learn: a frozen random one left the base at chance on multiple choice."
    import torch
    from vr1_nb.models import get_tiny_model, load_model, vision_tower
    run, _ = demo
    base = Path(json.loads((run/'sft'/'manifest.json').read_text())['config']['model']['path'])
    init, _ = get_tiny_model('tiny'); trained, _ = load_model(base)
    p0, p1 = dict(vision_tower(init).named_parameters()), dict(vision_tower(trained).named_parameters())
    changed = [k for k in p0 if not torch.equal(p0[k], p1[k])]
    assert len(changed) > len(p0) // 2, f"only {len(changed)} of {len(p0)} vision tensors changed in pre-training"

def test_report_numbers_are_recomputed_from_predictions(demo):
    run, rep = demo
    table = json.loads((rep/'report.json').read_text())['table']
    assert [r['stage'] for r in table] == list(EVALS)
    md = (rep/'report.md').read_text()
    for r in table:
        c, n = _rescore(run/EVALS[r['stage']]/'predictions.jsonl')
        assert (r['correct'], r['n']) == (c, n) and n == 24
        assert f"| {r['stage']} | {100 * c / n:.1f} | {c} / {n} |" in md

def test_report_follows_edited_predictions(demo, tmp_path):
    "Rewrite some predictions to the gold answer: a fresh report must change by exactly that many items."
    import shutil
    from vr1_nb.pipeline import write_report, demo_config
    run, _ = demo
    ev = tmp_path/'eval-grpo'; shutil.copytree(run/'eval-grpo', ev)
    rows = [json.loads(l) for l in (ev/'predictions.jsonl').read_text().splitlines()]
    before = _rescore(ev/'predictions.jsonl')[0]
    wrong = [r for r in rows if not verify_completions([r['response']], [r['answer']], [r.get('choices') or None])[0]][:5]
    for r in wrong: r['response'] = f"<think>x</think><answer>{r['answer']}</answer>"
    (ev/'predictions.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    rep = write_report(tmp_path, demo_config('smoke'), {'edited': ev}, {}, run/'filter', [])
    t = json.loads((rep/'report.json').read_text())['table'][0]
    assert t['correct'] == before + len(wrong) and len(wrong) > 0

def test_filter_yield_in_report_matches_filter_files(demo):
    run, rep = demo
    fy = json.loads((rep/'report.json').read_text())['filter']
    kept = len((run/'filter'/'cold_start.jsonl').read_text().splitlines())
    rej = len((run/'filter'/'rejected.jsonl').read_text().splitlines())
    assert (fy['kept'], fy['rejected']) == (kept, rej) and rej > 0   # smoke's teacher errs: the filter must reject something

def test_grpo_curves_cover_both_ptst_stages(demo):
    run, rep = demo
    curves = json.loads((rep/'report.json').read_text())['curves']['grpo']
    assert curves['steps'] == 4 and curves['boundaries'] == [3]   # smoke: two PTST stages of 2 steps; steps are 1-based
    # the report's first/last reward are means over a window of the run's own logged steps, not single noisy steps
    rows = [json.loads(l) for l in (run/'grpo'/'log.jsonl').read_text().splitlines() if l.strip()]
    rew = [float(r['reward']) for r in rows if 'reward' in r]
    w = curves['window']
    assert len(rew) == 4 and w == 1   # 4 steps: a window of max(1, 4 // 5) = 1
    assert curves['first_reward'] == pytest.approx(sum(rew[:w]) / w) and curves['last_reward'] == pytest.approx(sum(rew[-w:]) / w)
    md = (rep/'report.md').read_text()
    assert f"first / last {w} steps {curves['first_reward']:.3f} → {curves['last_reward']:.3f}" in md

def test_rerun_resumes_without_training(demo, monkeypatch):
    "A second run over a finished run directory trains nothing and rewrites no weights."
    import transformers
    from vr1_nb.pipeline import demo_run
    run, _ = demo
    weights = sorted(run.parent.rglob('model.safetensors'))   # the cached base model too
    assert len(weights) >= 3   # base, cold start, GRPO
    mts = [w.stat().st_mtime_ns for w in weights]
    def no_training(self, *a, **kw): raise AssertionError(f'{type(self).__name__}.train called on a finished run')
    monkeypatch.setattr(transformers.Trainer, 'train', no_training)
    demo_run('smoke', run, progress=False)
    assert [w.stat().st_mtime_ns for w in weights] == mts
    rows = [json.loads(l) for l in (run/'timings.jsonl').read_text().splitlines()]
    assert [r['stage'] for r in rows].count('data') == 2   # both invocations logged; the report sums them

def test_report_length_section_matches_the_log(demo):
    "The per-stage limit, mean length and share cut come from the GRPO log; the sampled lengths never exceed their stage's limit."
    run, rep = demo
    cur = json.loads((rep/'report.json').read_text())['curves']['grpo']
    rows = [json.loads(l) for l in (run/'grpo'/'log.jsonl').read_text().splitlines() if l.strip()]
    rows = [r for r in rows if 'reward' in r]
    for st in cur['stages']:
        rs = [r for r in rows if r['stage'] == st['stage']]
        assert st['limit'] == rs[0]['ptst/max_completion_length'] and st['steps'] == len(rs) == 2
        assert st['cut'][0] == pytest.approx(sum(r['completions/clipped_ratio'] for r in rs[:10]) / len(rs[:10]))
    assert [s['limit'] for s in cur['stages']] == [24, 32]   # smoke's two PTST limits
    samples = {k: v for k, v in cur['lengths'].items() if k.startswith('GRPO stage')}
    assert list(samples) == ['GRPO stage ptst-1, its first 10 steps: sampled completions', 'GRPO stage ptst-1: sampled completions',
                             'GRPO stage ptst-2: sampled completions']   # smoke's stage 1 has 2 steps: its first 10 are all of it
    assert all(v['n'] == 16 and v['mean'] <= v['limit'] for v in samples.values())   # 2 steps x 8 completions
    assert (rep/'grpo'/'lengths.png').stat().st_size > 0 and '![lengths](grpo/lengths.png)' in (rep/'report.md').read_text()

def test_report_gain_is_the_paired_difference(demo):
    "The RL gain in the report is acc(GRPO) - acc(cold start) on the same items, with an interval around it."
    run, rep = demo
    g = json.loads((rep/'report.json').read_text())['gains'][0]
    (c1, n1), (c0, n0) = _rescore(run/'eval-grpo'/'predictions.jsonl'), _rescore(run/'eval-sft'/'predictions.jsonl')
    assert g['n'] == n1 == n0 and g['gain'] == pytest.approx((c1 - c0) / n1)
    assert g['ci95'][0] <= g['gain'] <= g['ci95'][1]

def _fake_col(acc, n=200, seed=0, src='synth/counting', length=20, test_set=None):
    import random
    g = random.Random(seed); ok = [g.random() < acc for _ in range(n)]
    return dict(accuracy=sum(ok) / n, n=n, mean_length=float(length), per_source={src: sum(ok) / n},
                items=dict(n=n, ids_sha=f'test{seed if test_set is None else test_set}', correct=''.join('1' if o else '0' for o in ok),
                           length=[length] * n, sources=[src], source='0' * n))

def test_bootstrap_interval_covers_the_true_difference():
    "Simulated paired accuracies with a known 10-point gap: the 95% interval covers it in most runs and excludes 0 in most."
    import random
    from vr1_nb.pipeline import paired_bootstrap
    cover = excl = 0
    for k in range(40):
        g = random.Random(k); pairs = {}
        for s in range(3):
            u = [g.random() for _ in range(400)]
            pairs[s] = ([int(x < .6) for x in u], [int(x < .5) for x in u])   # paired: a is right wherever b is, plus 10%
        b = paired_bootstrap(pairs, n_boot=400, rng_seed=k)
        cover += b['ci95'][0] <= .1 <= b['ci95'][1]; excl += b['ci95'][0] > 0
    assert cover >= 32 and excl == 40

def test_findings_verdicts_follow_the_data():
    "A comparison that goes the paper's way is reproduced, the other way not reproduced, a coin flip inconclusive."
    from vr1_nb.pipeline import findings, FINDINGS
    spec = [f for f in FINDINGS if f['id'] in ('ci_below_base', 'ptst_above_long', 'ptst_above_zero')]
    cells = {'base': {str(s): {'acc': _fake_col(.65, seed=s)} for s in range(3)},
             'ci': {str(s): {'acc': _fake_col(.40, seed=s + 10, test_set=s)} for s in range(3)},
             'ci_ptst': {str(s): {'acc': _fake_col(.50, seed=s + 20, test_set=s)} for s in range(3)},
             'ci_long': {str(s): {'acc': _fake_col(.70, seed=s + 30, test_set=s)} for s in range(3)},
             'zero_rl': {str(s): {'acc': _fake_col(.50, seed=s + 40, test_set=s)} for s in range(3)}}
    v = {f['id']: f['verdict'] for f in findings(cells, specs=spec, n_boot=500)}
    assert v == {'ci_below_base': 'reproduced', 'ptst_above_long': 'not reproduced', 'ptst_above_zero': 'inconclusive'}
    bad = dict(cells, zero_rl={'0': {'acc': _fake_col(.5, test_set='other')}})
    with pytest.raises(ValueError, match='different items'): findings(bad, specs=spec, n_boot=50)

def test_grid_processes_share_cells(tmp_path, monkeypatch):
    "Two grid processes on disjoint seeds extend one cells.json under its lock: neither loses the other's cells."
    import multiprocessing as mp, time
    from vr1_nb import pipeline as P
    def fake_row(row, S):
        time.sleep(0.2); return {'samples': 1}
    class FakeSeed:
        def __init__(self, cfg, out, progress=False): pass
    monkeypatch.setattr(P, 'run_row', fake_row); monkeypatch.setattr(P, 'Seed', FakeSeed)
    kw = dict(seeds=(0, 1, 2, 3), rows=['base', 'ci', 'ci_long'], preset='smoke', results_dir=tmp_path/'res', progress=False)
    ps = [mp.get_context('fork').Process(target=P.replicate_run, args=(tmp_path/'grid',),
                                         kwargs=dict(kw, overrides=[f'replicate.run_seeds={s}'])) for s in ('[0,2]', '[1,3]')]
    for p in ps: p.start()
    for p in ps: p.join(60)
    cells = json.loads((tmp_path/'grid'/'cells.json').read_text())
    assert {r: sorted(c) for r, c in cells.items()} == {'base': ['0', '1', '2', '3'], 'ci': ['0', '1', '2', '3'], 'ci_long': ['0', '1', '2']}
    res = json.loads((tmp_path/'res'/'replication.json').read_text())
    assert res['partial'] is False and res['comparisons'] and 'findings' in res   # ci_long on the first 3 seeds only (other_seeds)

def test_tiny_cpu_teacher_overthinks_and_long_chains_are_worse():
    "The preset's teacher: a real share of its chains is longer than PTST's first limit, and those are more often wrong."
    from vr1_nb import synth, models
    from vr1_nb.core import load_config
    from vr1_nb.scene import SceneTeacher
    from vr1_nb.generate import Request
    from vr1_nb.bridge import user_message
    cfg = load_config('tiny-cpu'); lim = cfg['stages'][0]['max_completion_length']
    probs = synth.generate(300, families=cfg['data']['families'], levels=cfg['data']['levels'], mc_fraction=0, seed=99, render=False)
    st = SceneTeacher(probs, errors=cfg['teacher']['errors'], style=cfg['teacher']['style'])
    outs = st.generate([Request(p['id'], 'direct', 'scene', user_message(p['question']), seed=i) for i, p in enumerate(probs)])
    tok = models.get_tokenizer()
    n = [len(tok(o['texts'][0])['input_ids']) for o in outs]
    ok = [o['texts'][0].endswith(f"<answer>{p['answer']}</answer>") for o, p in zip(outs, probs)]
    long = [k for L, k in zip(n, ok) if L > lim]; short = [k for L, k in zip(n, ok) if L <= lim]
    assert 0.25 < len(long) / len(n) < 0.75 and sum(long) / len(long) < sum(short) / len(short) - 0.1
    assert all('wait, let me check' in o['texts'][0].lower() for o, L in zip(outs, n) if L > lim)   # only re-checks make a chain long

def test_prune_checkpoints_only_in_finished_runs(tmp_path):
    from vr1_nb.pipeline import prune_checkpoints
    for run, done in (('grpo', True), ('grpo-long', False)):
        ck = tmp_path/run/'stage-0-ptst-1'/'checkpoint-25'; ck.mkdir(parents=True); (ck/'optimizer.pt').write_bytes(b'x' * 100)
        (tmp_path/run/'manifest.json').write_text('{}')
        if done: (tmp_path/run/'COMPLETE').write_text('{}')
    assert prune_checkpoints(tmp_path) == 100
    assert not (tmp_path/'grpo'/'stage-0-ptst-1'/'checkpoint-25').exists() and (tmp_path/'grpo-long'/'stage-0-ptst-1'/'checkpoint-25').exists()
