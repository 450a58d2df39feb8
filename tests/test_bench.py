"""bench/gpu_bench.py: the `--cpu-check` run (the GPU benchmark's code paths at a tiny Qwen2.5-VL on CPU, real sizes on the
meta device) and the FLOP arithmetic its MFU figures rest on, counted against torch's own FLOP counter."""
import importlib.util, json, re, subprocess, sys
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO/'bench'/'gpu_bench.py'

@pytest.fixture(scope='module')
def gb():
    spec = importlib.util.spec_from_file_location('gpu_bench', SCRIPT)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

@pytest.fixture(scope='module')
def cpu_check(tmp_path_factory):
    "One `--cpu-check` run as CI runs it: its JSON (last stdout line) and the table it prints on stderr."
    out = tmp_path_factory.mktemp('cpu-check')
    p = subprocess.run([sys.executable, str(SCRIPT), '--cpu-check', '--out', str(out)], capture_output=True, text=True,
                       cwd=REPO, timeout=600)
    assert p.returncode == 0, p.stderr[-4000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    return res, p.stderr, out

def test_real_sizes_on_meta_device(cpu_check):
    "3B and 7B from the config numbers have the published parameter counts and never allocate their weights."
    real = cpu_check[0]['real_shapes']
    assert real['3b']['params'] == 3_754_622_976 and real['7b']['params'] == 8_292_166_656
    for size, vocab in (('3b', 151936), ('7b', 152064)):
        r = real[size]
        assert abs(r['rel_error']) < 0.005 and r['meta'] and r['tokenizer_len'] == vocab
        assert 0.6e9 < r['vision_params'] < 0.7e9

def test_every_measurement_ran(cpu_check):
    "Each measurement of the GPU mode ran at the tiny shape, full fine-tuning and LoRA, and produced its numbers."
    res, table, out = cpu_check
    assert set(res['sizes']) == {'tiny-full', 'tiny-lora'}
    for key, r in res['sizes'].items():
        gen, sft, grpo = r['generation'], r['sft_step'], r['grpo_step']
        assert isinstance(gen, list) and len(gen) == 4, gen
        assert [g['from'] for g in gen] == ['start', 'end'] * 2 and all(g['decode_tokens_per_s'] > 0 for g in gen)
        assert gen[1]['prompt_tokens'] == gen[0]['prompt_tokens'] + gen[1]['max_completion_length'] - gen[1]['new_tokens']
        assert all('est_stage_generation_s' in g for g in gen[1::2])
        assert [s.get('tokens') for s in sft] == res['shapes']['sft_lengths'], sft   # truncated to the SFT length, image kept
        assert [(s['stage'], s['max_completion_length']) for s in grpo] == [tuple(x[:2]) for x in res['shapes']['stages']], grpo
        want_ref = 'copy' if r['train'] == 'full' else 'adapter off'
        for s in sft + grpo:
            assert s['step_s'] > 0 and s['steps_timed'] == 2 and s['tflops'] > 0 and s['mfu_measured_matmul'] > 0, s
        assert all(s['reference_model'] == want_ref and s['beta'] > 0 for s in grpo)
    assert 'tiny-full' in table and 'grpo_run tiny' in table and not re.search(r'^\s*\S+\s+ERROR ', table, re.M)
    assert json.loads(Path(res['file']).read_text())['sizes'].keys() == res['sizes'].keys()   # the results file is written
    assert Path(res['file']).parent == out

def test_grpo_run_two_stages(cpu_check):
    "The library's grpo_run ran both PTST stages with the callback: memory at each stage start, one step each."
    g = cpu_check[0]['grpo_run']
    assert 'error' not in g, g
    assert len(g['stage_start']) == 2 and all(s['rss_gib'] > 0 for s in g['stage_start'])
    assert len(g['steps']) == 2 and g['log_rows'] == 2 and g['final'] == 'final'
    assert [s['tokens'] > 0 for s in g['steps']] == [True, True]

def test_flops_match_torch_flop_counter(gb):
    "The config-number FLOPs equal torch's count of the tiny model's forward: language model and windowed vision tower."
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    arch = gb.ARCHS['tiny']; tok = gb.padded_tokenizer(arch['text']['vocab_size'])
    m = gb.build_model(arch, tok)
    for c in (m.config, m.model.language_model.config, m.model.visual.config): c._attn_implementation = 'eager'
    S = 40
    with FlopCounterMode(display=False) as fc, torch.no_grad(): m(input_ids=torch.randint(20, 900, (1, S)), logits_to_keep=0)
    assert fc.get_total_flops() == gb.flops_text(arch['text'], S, S*S, S)   # eager attention computes all S x S scores
    ip = gb.make_processor(tok, 224*224).image_processor(images=[gb.random_image(224*224)], return_tensors='pt')
    assert ip['image_grid_thw'].tolist() == [[1, 16, 16]]   # 4 windows of 8 x 8 patches, one full-attention block
    with FlopCounterMode(display=False) as fc, torch.no_grad(): m.model.visual(ip['pixel_values'], grid_thw=ip['image_grid_thw'])
    assert fc.get_total_flops() == gb.flops_vision(arch['vision'], arch['text']['hidden_size'], [[1, 16, 16]])

def test_matmul_params_match_real_modules(gb):
    "Per-layer and per-patch weight counts used for FLOPs equal the Linear/Conv weights of the real 3B built on meta."
    import torch.nn as nn
    arch = gb.ARCHS['3b']; m = gb.build_model(arch, gb.padded_tokenizer(arch['text']['vocab_size']), 'meta')
    w = lambda mod: sum(x.weight.numel() for x in mod.modules() if isinstance(x, (nn.Linear, nn.Conv3d)))
    assert w(m.model.language_model.layers[0]) == gb.text_layer_matmul_params(arch['text'])
    vm = gb.vision_matmul_params(arch['vision'], arch['text']['hidden_size'])
    assert w(m.model.visual.patch_embed) + w(m.model.visual.blocks) == vm['per_patch']
    assert w(m.model.visual.merger) == vm['per_merged']

def test_causal_ctx_and_passes(gb):
    assert gb.causal_ctx(3) == 1 + 2 + 3 and gb.causal_ctx(2, start=10) == 11 + 12
    assert gb.training_passes('full') == 3 and gb.training_passes('lora') == 2
    t = gb.ARCHS['tiny']['text']
    assert gb.flops_text(t, 10, 55, 10, 3.0) == 3 * gb.flops_text(t, 10, 55, 10)

def test_padded_tokenizer(gb):
    "Placeholders fill the vocabulary to the model's size; the trained ids, special tokens and chat template are unchanged."
    from vr1_nb.models import get_tokenizer
    base, tok = get_tokenizer(), gb.padded_tokenizer(1280)
    assert len(tok) == 1280 and tok.chat_template == base.chat_template
    text = '<|vision_start|><|image_pad|><|vision_end|> How many <think>'
    assert tok(text).input_ids == base(text).input_ids
    assert tok.decode([1279]) == '<|pad1279|>'
    assert all(i < len(base) for i in gb.plain_ids(tok, placeholders=False))
    assert tok.convert_tokens_to_ids('<|image_pad|>') not in gb.plain_ids(tok)
    with pytest.raises(ValueError, match='below'): gb.padded_tokenizer(10)

def test_gpu_shapes_follow_the_preset(gb):
    "The GPU run takes its PTST stages and micro-batch from the vision-r1-7b preset."
    sh = gb.shapes('gpu')
    assert sh['stages'] == [('ptst-4k', 4096, 16), ('ptst-8k', 8192, 8)] and sh['micro_batch'] == 2
    assert sh['sft_lengths'] == [4096, 8192] and sh['image_px'] == 262_144
    q = gb.shapes('gpu', quick=True)
    assert q['stages'] == sh['stages'][:1] and q['sft_lengths'] == [4096] and q['decode'] < sh['decode']

def test_spec_peaks(gb):
    assert gb.spec_peak_tflops('NVIDIA H100 80GB HBM3') == 989.4
    assert gb.spec_peak_tflops('NVIDIA H100 PCIe') == 756.0
    assert gb.spec_peak_tflops('NVIDIA H200') == 989.4
    assert gb.spec_peak_tflops('NVIDIA L40S') == 362.1 and gb.spec_peak_tflops('NVIDIA L4') == 121.0
    assert gb.spec_peak_tflops('x86_64') is None
    assert gb.mfu(2e12, 2.0, {'spec': 10.0, 'none': None}) == {'tflops': 1.0, 'mfu_spec': 0.1, 'mfu_none': None}

def test_gpu_mode_refuses_without_cuda():
    "Without a GPU the default mode stops with a message pointing to --cpu-check (nothing written)."
    import torch
    if torch.cuda.is_available(): pytest.skip("a GPU is present")
    p = subprocess.run([sys.executable, str(SCRIPT), '--quick'], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode != 0 and '--cpu-check' in p.stderr
