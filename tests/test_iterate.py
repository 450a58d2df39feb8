"A 2-round OpenVLThinker iteration on the tiny model, with the medium->hard curriculum, and its resume."
import json
from pathlib import Path
import pytest

@pytest.fixture(scope='module')
def iterated(tmp_path_factory):
    from vr1_nb import synth
    from vr1_nb.core import load_config
    from vr1_nb.models import get_tiny_model, save_model
    from vr1_nb.iterate import iterate_run
    out = tmp_path_factory.mktemp('iterate')
    tr, te = synth.make_splits(16, 6)
    m, p = get_tiny_model('tiny'); base = save_model(m, p, out/'base')
    cfg = load_config('smoke')
    cfg['model']['path'] = str(base)
    cfg['stages'] = [{'name': 'ptst-1', 'max_completion_length': 12, 'num_generations': 4, 'max_steps': 1}]
    cfg['iterate'] = dict(rounds=2, sft_set=[dict(r, response=synth.r1_response(r)) for r in tr[:8]], rl=tr[8:], test=te,
                          samples=2, max_new_tokens=12, medium_max=0.5)
    return cfg, out/'run', iterate_run(cfg, out/'run')

def test_two_rounds_logged(iterated):
    cfg, run, summ = iterated
    rows = [json.loads(l) for l in (run/'rounds.jsonl').read_text().splitlines()]
    assert [r['round'] for r in rows] == [1, 2] and summ['rounds'] == rows
    for r in rows:
        assert 0 <= r['acc_sft'] <= 1 and 0 <= r['acc_grpo'] <= 1 and r['rs_problems'] == 8
        assert (run/f"round{r['round']}"/'next_sft.jsonl').exists()
        assert (run/f"round{r['round']}"/'eval-grpo'/'predictions.jsonl').exists()

def test_v3_sft_restarts_from_base(iterated):
    cfg, run, summ = iterated
    assert all(r['sft_start'] == cfg['model']['path'] for r in summ['rounds'])

def test_curriculum_from_base_error_rates(iterated):
    from vr1_nb.iterate import error_rates, curriculum
    cfg, run, summ = iterated
    rates = json.loads((run/'difficulty'/'error_rates.json').read_text())
    assert rates == error_rates(run/'difficulty') and set(rates) <= {'synth/counting', 'synth/geometry', 'synth/chart'}
    phases = [p['phase'] for p in summ['rounds'][0]['phases']]
    cur = curriculum(cfg['iterate']['rl'], rates, medium_max=0.5)
    assert phases == [f'grpo-{k}' for k in ('medium', 'hard') if cur[k]]   # medium before hard, empty phases skipped
    assert sum(p['n'] for p in summ['rounds'][0]['phases']) == 8

def test_resume_reuses_finished_run(iterated):
    from vr1_nb.iterate import iterate_run
    cfg, run, summ = iterated
    assert iterate_run(cfg, run, resume=True) == json.loads((run/'summary.json').read_text())

def test_bad_settings_are_named():
    from vr1_nb.iterate import iterate_settings
    with pytest.raises(ValueError, match='roundz'): iterate_settings({'iterate': {'roundz': 2}})
