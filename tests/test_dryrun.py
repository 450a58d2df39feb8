"The GPU presets build and step on CPU with their own settings; the launch configs load and wrap real classes."
import re
from pathlib import Path
import pytest
from vr1_nb.core import load_config
from vr1_nb.dryrun import construct, check_launch_config
from vr1_nb.grpo import ptst_stages

REPO = Path(__file__).resolve().parents[1]
GPU_PRESETS = ['vision-r1-7b', 'openvlthinker-7b', 'othink-mr1-2b']
ALLOWED = re.compile(r'^(?:(?:model\.(?:path|attn_implementation)|(?:sft|grpo)\.(?:use_cpu|bf16|fp16|use_vllm|max_steps|max_completion_length)'
                     r'|(?:stages|curriculum)\[\d+\]\.(?:max_steps|max_completion_length|episodes)'
                     r'|(?:sft|grpo)\.logging_steps|eval\.(?:backend|max_new_tokens|max_tokens|reask)): '
                     r'|grpo\.(?:gradient_accumulation_steps|steps_per_generation): .*\(CPU time)')
KEYS = ('per_device_train_batch_size', 'gradient_accumulation_steps', 'gradient_checkpointing', 'learning_rate', 'save_steps',
        'save_total_limit', 'num_generations', 'loss_type', 'beta', 'epsilon', 'epsilon_high', 'temperature', 'vllm_mode',
        'vllm_gpu_memory_utilization')

@pytest.mark.parametrize('name', GPU_PRESETS)
def test_preset_builds_and_steps_with_its_own_settings(name, tmp_path):
    cfg = load_config(name)
    rep = construct(cfg, steps=1, workdir=tmp_path)
    stages = ptst_stages(cfg)
    assert [t['trainer'] for t in rep['trainers']] == ['sft'] + [s['name'] for s in stages]
    assert all(t['steps_trained'] == 1 for t in rep['trainers'])
    assert all(ALLOWED.match(c) for c in rep['overrides']), rep['overrides']     # only what a CPU cannot do or afford
    expected = [cfg['sft']] + [s['section'] for s in stages]
    for row, sec in zip(rep['trainers'], expected):
        changed = {c.split(':')[0].split('.')[-1] for c in rep['overrides'] if 'CPU time' in c}
        for k in KEYS:
            if k in changed: continue
            if k == 'beta' and (cfg.get('beta_schedule') or {}).get('kind') == 'grpo_d': continue   # GRPOConfig holds the stage's max
            if k in sec and k in row: assert row[k] == pytest.approx(sec[k]), (row['trainer'], k, row[k], sec[k])
        want = sec.get('report_to', 'none'); assert row['report_to'] == ([want] if isinstance(want, str) else want)
        assert row['dtype'] == 'float32'                     # master weights, whatever the checkpoint's bf16
    fam = 'Qwen2_5_VLForConditionalGeneration' if '2.5' in cfg['model']['path'] else 'Qwen2VLForConditionalGeneration'
    assert {t['model'] for t in rep['trainers']} == {fam}
    from vr1_nb.sft import read_log
    logs = [tmp_path/'sft'] + sorted(p.parent for p in (tmp_path/'grpo').rglob('log.jsonl'))
    assert len(logs) > 1 and all(any('loss' in r for r in read_log(d)) for d in logs), logs   # a row per step (plots)

@pytest.mark.parametrize('name', GPU_PRESETS)
def test_cpu_config_evaluates_on_cpu_and_logs_every_step(name):
    "The eval section runs on transformers at the completion cap without re-asks; the protocol's sampling is kept."
    from vr1_nb.dryrun import cpu_config
    from vr1_nb.evaluate import resolve_protocol
    cfg = load_config(name)
    cpu, changes = cpu_config(cfg, max_completion_length=16)
    p, want = resolve_protocol({k: v for k, v in cpu['eval'].items() if k != 'backend'}), resolve_protocol(
        {k: v for k, v in cfg['eval'].items() if k != 'backend'})
    assert cpu['eval']['backend'] == {'kind': 'hf'} and (p['max_tokens'], p['reask']) == (16, 0)
    assert {k: p[k] for k in ('temperature', 'top_p', 'top_k', 'instruction', 'prompt')} == \
           {k: want[k] for k in ('temperature', 'top_p', 'top_k', 'instruction', 'prompt')}
    assert (cpu['sft']['logging_steps'], cpu['grpo']['logging_steps']) == (1, 1)
    assert 'eval.backend' in ' '.join(changes) and 'grpo.logging_steps: <unset> -> 1' in ' '.join(changes)
    assert cfg['eval']['backend'] == {'kind': 'vllm'}                       # the preset itself is untouched

def test_cpu_config_eval_edge_cases():
    "No eval section: one is made with the cap; `max_tokens` (which wins over max_new_tokens) is the key capped."
    from vr1_nb.dryrun import cpu_config
    base = {k: v for k, v in load_config('othink-mr1-2b').items() if k != 'eval'}
    cpu, _ = cpu_config(base)
    assert cpu['eval'] == {'max_new_tokens': 16}
    cpu, ch = cpu_config(dict(base, eval={'max_tokens': 512, 'max_new_tokens': 8, 'backend': 'vllm'}))
    assert (cpu['eval']['max_tokens'], cpu['eval']['backend']) == (16, {'kind': 'hf'})
    assert 'eval.max_tokens: 512 -> 16 (length)' in ch

@pytest.mark.parametrize('family', ['qwen2_5_vl', 'qwen2_vl'])
@pytest.mark.parametrize('path', sorted((REPO/'configs'/'accelerate').glob('*.yaml')), ids=lambda p: p.name)
def test_launch_config_loads_and_wraps(path, family):
    r = check_launch_config(path, family)
    assert r['kind'] in ('fsdp', 'deepspeed', 'ddp')
    if r['kind'] == 'fsdp':
        pre = 'Qwen2_5_VL' if family == 'qwen2_5_vl' else 'Qwen2VL'
        assert r['wraps'] == [f'{pre}DecoderLayer', f'{pre}VisionBlock']
