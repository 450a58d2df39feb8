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
                     r'|(?:stages|curriculum)\[\d+\]\.(?:max_steps|max_completion_length|episodes)): '
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

@pytest.mark.parametrize('family', ['qwen2_5_vl', 'qwen2_vl'])
@pytest.mark.parametrize('path', sorted((REPO/'configs'/'accelerate').glob('*.yaml')), ids=lambda p: p.name)
def test_launch_config_loads_and_wraps(path, family):
    r = check_launch_config(path, family)
    assert r['kind'] in ('fsdp', 'deepspeed', 'ddp')
    if r['kind'] == 'fsdp':
        pre = 'Qwen2_5_VL' if family == 'qwen2_5_vl' else 'Qwen2VL'
        assert r['wraps'] == [f'{pre}DecoderLayer', f'{pre}VisionBlock']
