"GRPO contracts: PTST stage boundary + GRPO-D beta in the log, kill-and-resume, refusal to restart over a run."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from vr1_nb.core import RunExistsError, ConfigError
from vr1_nb.synth import red_squares
from vr1_nb.grpo import grpo_run, grpo_d_beta, read_log, plot_curves, STAGE_DONE

REPO = Path(__file__).resolve().parents[1]

problems = red_squares  # `test_grpo.problems` is also what the kill-and-resume subprocess imports

def config(**grpo):
    return {'seed': 0, 'model': {'path': 'tiny:tiny'},
            'grpo': {'learning_rate': 1e-5, 'per_device_train_batch_size': 4, 'use_cpu': True, 'report_to': 'none', 'logging_steps': 1,
                     'save_strategy': 'no', 'gradient_checkpointing': False, 'loss_type': 'grpo', **grpo},
            'stages': [{'name': 'short', 'max_completion_length': 8, 'num_generations': 4, 'max_steps': 4},
                       {'name': 'long', 'max_completion_length': 16, 'num_generations': 2, 'max_steps': 4}],
            # w = 0.5 * 8 = 4: beta is exactly 0 at the second stage's first generation, so its trainer must be built
            # with the reference model forced, or the KL of steps 7-8 could not be computed
            'beta_schedule': {'kind': 'grpo_d', 'beta_min': 0.0, 'beta_max': 0.02, 'warmup_frac': 0.5},
            'monitor': {'sample_every': 2, 'eval_every': 4}}

def test_ptst_boundary_and_grpo_d_beta(tmp_path):
    # two micro-steps per generation batch: beta may change only every second step
    cfg = config(steps_per_generation=2)
    grpo_run(cfg, problems(), tmp_path/'run', eval_records=problems(4))
    rows = read_log(tmp_path/'run')
    tr = [r for r in rows if 'loss' in r]                     # one row per optimizer step
    assert [r['step'] for r in tr] == list(range(1, 9))
    assert [r['step'] for r in tr if 'reward' in r] == [1, 3, 5, 7]   # generation metrics come with each generation
    assert [r['ptst/num_generations'] for r in tr] == [4]*4 + [2]*4
    assert [r['ptst/max_completion_length'] for r in tr] == [8]*4 + [16]*4
    assert [r['stage'] for r in tr] == ['short']*4 + ['long']*4
    assert all(r['completions/max_length'] <= r['ptst/max_completion_length'] for r in tr if 'reward' in r)
    for r in tr:   # generation batches start at steps 1, 3, 5, 7 (0-based s = 0, 2, 4, 6); no floor is applied
        s0 = (r['step'] - 1) // 2 * 2
        assert r['beta'] == pytest.approx(grpo_d_beta(s0, 8, 0.0, 0.02, 0.5), abs=1e-12), r
    assert tr[4]['beta'] == 0 and 'kl' not in tr[4]           # beta 0: TRL skips the reference pass
    assert tr[6]['beta'] > 0 and 'kl' in tr[6]                # beta back above 0: the forced reference model is there
    assert {'accuracy', 'format_rate', 'reflection_words', 'rewards/hard_format_reward/mean', 'learning_rate'} <= set(tr[0])
    ev = [r for r in rows if 'eval_accuracy' in r]
    assert [r['step'] for r in ev] == [4, 8]
    assert (tmp_path/'run'/'stage-0-short'/STAGE_DONE).exists() and (tmp_path/'run'/'final'/'README.md').exists()
    assert {json.loads(l)['step'] for l in (tmp_path/'run'/'samples.jsonl').read_text().splitlines()} == {0, 2, 4, 6}   # generations at run-wide steps 0, 2, 4, 6
    from vr1_nb.models import load_model
    model, proc = load_model(tmp_path/'run'/'final')                       # from_pretrained loads the final checkpoint
    assert model.config.model_type == 'qwen2_vl' and '"stage": "grpo"' in (tmp_path/'run'/'final'/'README.md').read_text()
    fig = plot_curves(tmp_path/'run')
    assert len(fig.axes) >= 3
    with pytest.raises(RunExistsError, match='--resume'): grpo_run(cfg, problems(), tmp_path/'run')
    assert grpo_run(cfg, problems(), tmp_path/'run', resume=True) == tmp_path/'run'/'final'

SCRIPT = '''
import sys, time, json
sys.path.insert(0, {repo!r})
from vr1_nb.grpo import grpo_run
from vr1_nb.rewards import hard_format_reward
def slow_reward(prompts, completions, **kw):
    time.sleep(float({sleep!r}))
    return hard_format_reward(prompts, completions, **kw)
cfg = json.loads({cfg!r})
grpo_run(cfg, {problems}, {out!r}, resume={resume}, reward_funcs=[slow_reward])
'''

def _script(tmp_path, out, resume, sleep):
    cfg = config(save_strategy='steps', save_steps=1)
    cfg['stages'][1]['max_steps'] = 5
    prob = f"__import__('test_grpo').problems()"
    src = SCRIPT.format(repo=str(REPO), sleep=sleep, cfg=json.dumps(cfg), problems=prob, out=str(out), resume=resume)
    p = tmp_path/f'run_{resume}.py'; p.write_text(src)
    return p

def test_kill_and_resume(tmp_path):
    out = tmp_path/'run'
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, str(_script(tmp_path, out, False, 0.3))], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = out/'stage-1-long'/'checkpoint-2'
    t0 = time.time()
    while not (ck/'trainer_state.json').exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() - t0 < 240, 'no checkpoint in the second stage after 240 s'
        time.sleep(0.2)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL); proc.wait()
    before = read_log(out)
    assert not (out/'COMPLETE').exists() and not (out/'stage-1-long'/STAGE_DONE).exists()
    with pytest.raises(RunExistsError, match='unfinished'): grpo_run(config(), problems(), out)
    ckpts = sorted(int(p.name.split('-')[1]) for p in (out/'stage-1-long').glob('checkpoint-*'))
    r = subprocess.run([sys.executable, str(_script(tmp_path, out, True, 0.0))], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [x for x in read_log(out) if 'reward' in x]
    assert [x['step'] for x in rows] == list(range(1, 10))            # no gap, no duplicate across the kill
    assert [x['stage'] for x in rows] == ['short']*4 + ['long']*5
    for x in rows: assert x['beta'] == pytest.approx(grpo_d_beta(x['step'] - 1, 9, 0.0, 0.02, 0.5), abs=1e-12)
    # the resumed process continued the second stage from its checkpoint, not from scratch
    resumed = json.loads((out/'manifest.json').read_text())
    assert resumed.get('resumed') and (out/'COMPLETE').exists()
    kept = [x for x in before if 'reward' in x and x['step'] <= 4 + max(ckpts)]
    assert [x['reward'] for x in rows[:len(kept)]] == [x['reward'] for x in kept]

def test_two_process_ddp(tmp_path):
    "Tiny SFT then GRPO under `accelerate launch --multi_gpu --num_processes 2` with use_cpu=True: real gloo DDP, one model."
    # `--cpu --num_processes 2` (and a MULTI_CPU config) silently start ONE process; see configs/accelerate/README.md
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    cmd = [str(Path(sys.executable).parent/'accelerate'), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
           '--mixed_precision', 'no', '--dynamo_backend', 'no', str(Path(__file__).parent/'ddp_train.py'), str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert r.returncode == 0, r.stderr[-4000:]
    for tag in ('sft', 'grpo'):
        ranks = [json.loads((tmp_path/f'{tag}-rank{i}.json').read_text()) for i in (0, 1)]
        assert [x['world'] for x in ranks] == [2, 2] and {x['backend'] for x in ranks} == {'gloo'}, ranks
        assert ranks[0]['end'] == ranks[1]['end'], f'{tag}: the two ranks ended with different parameters'
        assert ranks[0]['begin'] != ranks[0]['end'], f'{tag}: parameters did not change'
        assert [x['steps'] for x in ranks] == [2, 2]
    assert (tmp_path/'sft'/'COMPLETE').exists() and (tmp_path/'grpo'/'COMPLETE').exists()
    assert len([r for r in read_log(tmp_path/'grpo') if 'loss' in r]) == 2     # rank 0 alone writes the log

def test_lora_stages_beta_through_zero(tmp_path):
    "Under PEFT the reference is TRL's adapter-disabled model (stage 1) or its frozen 'ref' copy of the starting adapter (stage 2)."
    cfg = config()
    cfg['model'] = {'path': 'tiny:tiny', 'lora': {'r': 4, 'lora_alpha': 8}}
    cfg['stages'] = [{'name': 'short', 'max_completion_length': 8, 'num_generations': 4, 'max_steps': 2},
                     {'name': 'long', 'max_completion_length': 16, 'num_generations': 2, 'max_steps': 2}]
    cfg['monitor'] = {'enabled': False}
    final = grpo_run(cfg, problems(), tmp_path/'run')
    tr = [r for r in read_log(tmp_path/'run') if 'loss' in r]
    assert [r['ptst/num_generations'] for r in tr] == [4, 4, 2, 2]
    for r in tr: assert r['beta'] == pytest.approx(grpo_d_beta(r['step'] - 1, 4, 0.0, 0.02, 0.5), abs=1e-12)
    assert tr[2]['beta'] == 0 and 'kl' not in tr[2] and tr[3]['beta'] > 0 and 'kl' in tr[3]
    s0 = tmp_path/'run'/'stage-0-short'/'final'
    assert (s0/'adapter_model.safetensors').exists() and not (s0/'ref').exists()
    assert (final/'adapter_config.json').exists() and not (final/'ref').exists()

def test_too_few_prompts_for_a_generation_batch_is_refused_before_the_run(tmp_path):
    # 8 completions per device in groups of 2 draw 4 distinct prompts; with 2 the dataloader would be empty and the
    # stage would "finish" in zero steps with its starting weights
    cfg = {**config(per_device_train_batch_size=8, num_generations=2, max_steps=3), 'stages': None}
    with pytest.raises(ConfigError, match="stage 'grpo': one generation batch draws 4 distinct prompts"):
        grpo_run(cfg, problems(2), tmp_path/'run')
    assert not (tmp_path/'run').exists()
