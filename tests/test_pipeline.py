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

def test_rerun_resumes_without_training(demo):
    import time
    from vr1_nb.pipeline import demo_run
    run, _ = demo
    mt = (run/'grpo'/'final'/'model.safetensors').stat().st_mtime
    t0 = time.time(); demo_run('smoke', run, progress=False)
    assert (run/'grpo'/'final'/'model.safetensors').stat().st_mtime == mt
    assert time.time() - t0 < 60
    rows = [json.loads(l) for l in (run/'timings.jsonl').read_text().splitlines()]
    assert [r['stage'] for r in rows].count('data') == 2   # both invocations logged; the report sums them
