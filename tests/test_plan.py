"The planner's contracts: the published formulas it follows, vLLM's start-up refusal, the settings it injects, and its output."
import json
import pytest
from vr1_nb.core import ConfigError, load_config
from vr1_nb.plan import (GiB, EASYR1_DEFAULT, activation_memory, check_plan, format_plan, image_tokens, kv_bytes_per_token,
                         kv_capacity, model_states, plan_arch, plan_run, stage_vllm_settings, trl_defaults)

CAP = ['data.max_pixels=1003520']          # 1,280 image tokens at most

def test_zero_paper_example():
    "ZeRO (Rajbhandari et al. 2020), Fig. 1: 7.5B parameters on 64 GPUs take 120, 31.4, 16.6 and 1.9 GB per GPU."
    got = [round(sum(model_states(7.5e9, 7.5e9, 64, zero=z).values()) / 1e9, 1) for z in range(4)]
    assert got == [120.0, 31.4, 16.6, 1.9]
    assert model_states(7.5e9, 0, 64, zero=1)['optimizer'] == 0      # frozen parameters carry no gradient or Adam state

def test_kv_bytes_follow_vllm_arithmetic():
    a = plan_arch(load_config('vision-r1-7b'))
    assert kv_bytes_per_token(a) == 2 * 28 * 4 * 128 * 2 == 57344
    assert kv_bytes_per_token(a, tp=2) == 57344 // 2
    assert kv_bytes_per_token(a, tp=8) == kv_bytes_per_token(a, tp=4)   # 4 KV heads: replicated beyond TP 4
    kv = kv_capacity(10 * GiB, 57344, 10000, 16)
    assert kv['capacity_tokens'] % 16 == 0 and kv['fits_one'] and kv['need_tokens'] == 16 * 10000

def test_image_tokens_bound_smart_resize():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
    for mx in (262144, 1003520, 4194304):
        cap = image_tokens(mx)
        assert cap == mx // 784
        for h, w in ((480, 640), (1080, 1920), (3000, 400), (2048, 2048)):
            rh, rw = smart_resize(h, w, 28, 3136, mx)
            assert rh * rw // 784 <= cap
    assert image_tokens(262144, 262144) > 262144 // 784        # min_pixels can force more than max/784

def test_issue_failure_is_refused_naming_each_stage():
    "TRL's 0.3 and vLLM's 128,000 default length: the pool cannot hold one sequence, as vLLM's start-up check says."
    as_shipped = ['data.max_pixels=null', 'data.min_pixels=null', 'grpo.vllm_tensor_parallel_size=1']   # the preset the issue read
    plan = plan_run(load_config('vision-r1-7b', as_shipped + ['grpo.vllm_gpu_memory_utilization=0.3', 'grpo.vllm_max_model_length=128000']))
    assert all(not s['kv']['fits_one'] for s in plan['stages'])
    with pytest.raises(ConfigError, match="stage 'ptst-4k'.*refuses to start.*stage 'ptst-8k'"): check_plan(plan)

def test_planned_settings_hold_the_batch_and_are_injectable():
    cfg = load_config('vision-r1-7b', CAP)
    plan = check_plan(plan_run(cfg))
    json.loads(json.dumps(plan))                                 # one JSON object
    for i, st in enumerate(plan['stages']):
        s = stage_vllm_settings(cfg, i)
        assert s['vllm_max_model_length'] == plan['prompt']['tokens'] + st['max_completion_length'] == st['kv']['seq_len']
        assert st['kv']['fits_one'] and st['kv']['fits_batch'] and st['fits_memory']
    # injecting the planned values as preset values reproduces the same plan
    ov = [f"grpo.vllm_gpu_memory_utilization={plan['stages'][1]['vllm_gpu_memory_utilization']}",
          f"grpo.vllm_max_model_length={plan['stages'][1]['vllm_max_model_length']}"]
    again = plan_run(load_config('vision-r1-7b', CAP + ov))['stages'][1]
    assert again['kv'] == plan['stages'][1]['kv'] and again['vllm_gpu_memory_utilization_source'] == 'preset'
    assert 'vllm_gpu_memory_utilization' not in stage_vllm_settings(load_config('vision-r1-7b', CAP + ov), 'ptst-8k')

def test_batch_warning_names_stage_and_concurrency():
    plan = plan_run(load_config('vision-r1-7b', CAP + ['grpo.vllm_gpu_memory_utilization=0.3', 'grpo.vllm_tensor_parallel_size=1']))
    w = [x for x in plan['warnings'] if "'ptst-8k'" in x and 'at once' in x]
    assert w and not plan['errors'] and plan['stages'][1]['kv']['concurrency'] < 16

def test_memory_beyond_the_card_is_an_error():
    with pytest.raises(ConfigError, match="stage 'ptst-4k': needs .* GiB per GPU"):
        check_plan(plan_run(load_config('vision-r1-7b', CAP + ['hardware.gpu_mem_gib=40'])))

def test_loss_head_is_not_full_logits():
    "TRL 1.16's fused LM head never builds tokens x vocab logits: its memory grows with the head, not with tokens x vocab."
    a = plan_arch(load_config('vision-r1-7b'))
    h1 = activation_memory(a, 20000, 16384, zero=3)['loss_head']
    h2 = activation_memory(a, 40000, 32768, zero=3)['loss_head']
    assert h1 < 16384 * a['vocab_size'] * 4 / 2                  # far below the fp32 logits of the completions
    assert h2 - h1 < 0.5 * GiB

def test_reference_sharding_follows_trl():
    v, o = plan_run(load_config('vision-r1-7b', CAP)), plan_run(load_config('othink-mr1-2b', CAP))
    assert v['stages'][0]['per_gpu']['reference'] == pytest.approx(2 * 8.29e9 / 8 / GiB, abs=0.01)   # ZeRO-3: sharded
    assert o['stages'][0]['per_gpu']['reference'] == pytest.approx(2 * 2.21e9 / GiB, abs=0.01)       # ZeRO-2 -> stage 0 copy

def test_sleep_mode_frees_the_engine_during_training():
    off = plan_run(load_config('vision-r1-7b', CAP))['stages'][1]
    on = plan_run(load_config('vision-r1-7b', CAP + ['grpo.vllm_enable_sleep_mode=true']))['stages'][1]
    engine = off['vllm_gpu_memory_utilization'] * 80             # the reservation the engine holds without sleep
    assert off['per_gpu']['phases']['training'] - on['per_gpu']['phases']['training'] == pytest.approx(engine, abs=0.5)

def test_rl_budget_against_easyr1_default():
    plan = plan_run(load_config('vision-r1-7b', CAP))
    b1, b2 = (s['rl_budget'] for s in plan['stages'])
    assert (b1['prompts_per_step'], b1['rollouts_per_step'], b2['prompts_per_step']) == (8, 128, 16)
    assert plan['totals']['rl_prompts_seen'] == 2400 and b1['rl_set_size'] == 10_000
    assert b1['fraction_of_easyr1_default']['prompts_per_update'] == 8 / 128
    assert EASYR1_DEFAULT['source'].endswith('17e6d08a7b0471ff93b2be70e7ce79f6b0a4da9f')
    assert plan['totals']['rl_gpu_hours'] == pytest.approx(sum(s['gpu_hours'] for s in plan['stages']), abs=0.2)

def test_time_grows_with_length_and_fill():
    full = plan_run(load_config('vision-r1-7b', CAP))['stages']
    half = plan_run(load_config('vision-r1-7b', CAP), completion_fill=0.5)['stages']
    assert full[1]['time_per_step_s']['total'] > full[0]['time_per_step_s']['total']
    assert half[1]['time_per_step_s']['generation'] < full[1]['time_per_step_s']['generation']
    with pytest.raises(ConfigError, match='unknown assumption'): plan_run(load_config('vision-r1-7b'), mfu_=0.1)

def test_generation_without_vllm_is_planned_in_the_training_process():
    hf = plan_run(load_config('othink-mr1-2b', CAP + ['grpo.use_vllm=false']))['stages'][0]
    vl = plan_run(load_config('othink-mr1-2b', CAP + ['grpo.use_vllm=true']))['stages'][0]
    assert hf['generation_backend'] == 'transformers' and vl['generation_backend'] == 'vllm-colocate'
    assert vl['time_per_step_s']['generation'] < hf['time_per_step_s']['generation']

def test_cpu_presets_get_a_budget_only():
    for name in ('tiny-cpu', 'smoke'):
        plan = check_plan(plan_run(load_config(name)))
        assert plan['stages'] and all('rl_budget' in s for s in plan['stages']) and 'CPU preset' in format_plan(plan)

def test_format_plan_prints_every_stage():
    text = format_plan(plan_run(load_config('vision-r1-7b', ['data.max_pixels=null', 'data.min_pixels=null'])))
    for needle in ('stage ptst-4k', 'stage ptst-8k', 'KV:', 'time/step', 'RL budget', 'RL total', 'warning: data.max_pixels unset'):
        assert needle in text

def test_arch_from_local_config_json(tmp_path):
    text = {'hidden_size': 1536, 'num_hidden_layers': 28, 'num_key_value_heads': 2, 'head_dim': 128, 'vocab_size': 151936,
            'intermediate_size': 8960, 'num_attention_heads': 12}
    (tmp_path/'config.json').write_text(json.dumps({'text_config': text, 'tie_word_embeddings': True}))
    a = plan_arch({'model': {'path': str(tmp_path), 'arch': {'params_b': 2.21, 'vision_params_b': 0.67}}})
    assert (a['intermediate_size'], a['tie_word_embeddings'], a['derived']) == (8960, True, [])

def test_trl_default_utilisation_is_read_not_remembered():
    assert trl_defaults('GRPOConfig')['vllm_gpu_memory_utilization'] == 0.3

def test_unknown_stage_is_named():
    with pytest.raises(ConfigError, match="'ptst-16k'.*ptst-4k"): stage_vllm_settings(load_config('vision-r1-7b'), 'ptst-16k')

def _cuda(monkeypatch, name, mib, n):
    "Make `torch.cuda` report `n` devices called `name` with `mib` MiB each."
    import types, torch
    props = types.SimpleNamespace(name=name, total_memory=mib * 2**20)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: n)
    monkeypatch.setattr(torch.cuda, 'get_device_properties', lambda i: props)

def test_gate_plans_the_detected_machine_and_names_the_step(monkeypatch, capsys):
    "The plan on this machine's cards, as the walkthroughs gate each step: lines printed, a misfit refused."
    from vr1_nb.plan import detected_hardware, gate
    cfg = load_config('openvlthinker-7b')
    _cuda(monkeypatch, 'NVIDIA H100 80GB HBM3', 81_559, 2)
    hw = detected_hardware(cfg['hardware'])
    assert (hw['num_gpus'], hw['gpu'], hw['gpu_mem_gib'], hw['zero_stage']) == (2, 'H100-80GB', 79.6, 3)
    assert detected_hardware(cfg['hardware'], use_gpu=False) == cfg['hardware']
    with pytest.raises(ConfigError, match=r"hard will not fit on 2 x H100-80GB: stage 'hard'"):
        gate(plan_run(dict(cfg, hardware=hw)), 'hard')
    assert 'stage hard (2,048-token completions x 5)' in capsys.readouterr().out
    gate(plan_run(cfg), 'hard')                                          # the preset's 8 cards: it fits, nothing raised
    _cuda(monkeypatch, 'NVIDIA L40S', 46_068, 1)                         # a card the planner does not know
    l40 = detected_hardware(cfg['hardware'])
    assert (l40['gpu'], l40['gpu_mem_gib']) == ('H100-80GB', 45.0)      # the preset's card, this machine's memory

def test_gate_on_a_cpu_plan_and_unknown_steps():
    from vr1_nb.plan import gate, step_lines
    cpu = plan_run(load_config('smoke'))
    assert step_lines(cpu, cpu['stages'][0]['name'])[0].endswith('prompts/step')
    with pytest.raises(ConfigError, match=r"'ptst-99' is not a step of the plan"): gate(cpu, 'ptst-99')
