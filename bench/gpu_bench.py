"""GPU benchmark of the real-scale path: Qwen2.5-VL-3B and -7B at real shape, random weights (no download), one GPU.

    python bench/gpu_bench.py --cpu-check          # CI: real shapes on the meta device + every measurement, tiny, on CPU
    python bench/gpu_bench.py                      # GPU: 3B and 7B (sized for < 8 min on one H100; not yet run on one)
    python bench/gpu_bench.py --quick              # GPU: 3B only, the 4K stage only, fewer decode tokens

What it measures (GPU mode; bench/README.md has the exact device command and what each number means):
  generation  HF `generate` tokens/s at each PTST stage's shape (batch = the stage's num_generations, prompt = one image
              at the pixel cap + random text), decoding from the start of the completion and from near its end
              (context = prompt + max_completion_length - decode tokens); prefill time separately
  grpo_step   time and peak memory of one GRPO micro-step through TRL's GRPOTrainer at each stage's
              max_completion_length (4K, 8K): the preset's micro-batch of completions, reference-model forward, GRPO loss,
              backward, optimizer step. Generation inside the step is a fixed-length rollout (TRL's `rollout_func`: random
              tokens, every completion clipped at the stage length, the worst case) so that the step costs seconds;
              generation speed is the `generation` row
  sft_step    time and peak memory of one SFT step through TRL's SFTTrainer on image+text examples of 4K and 8K tokens
  mfu         model FLOPs of each of the above from the config numbers (`flops_*` below), over the time, against the
              card's dense bf16 peak (spec sheet) and against a matmul measured on the same card
  grpo_run    the library's two-stage `vr1_nb.grpo.grpo_run` at 3B (real HF generation, short stages), with the memory
              held at each stage's start (`torch.cuda.memory_allocated`): stage 2 starting above stage 1 means
              stage 1 left something behind
Writes bench/results/gpu_bench-<gpu name>-<date>.json and prints a table. `--cpu-check` runs the same functions at a
tiny same-architecture shape (Qwen2_5_VLForConditionalGeneration, 2 layers) and prints one JSON object.
"""
from __future__ import annotations
import argparse, datetime, gc, json, math, os, platform, re, resource, shutil, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path: sys.path.insert(0, str(REPO))   # run from a checkout without installing (the GPU box)

# The real checkpoints' config.json numbers (Qwen/Qwen2.5-VL-3B-Instruct and Qwen/Qwen2.5-VL-7B-Instruct on the Hugging
# Face hub). Found with the search tool: the 3B config.json as quoted in a public model-structure note (code corpus,
# "# Qwen/Qwen2.5-VL-3B-Instruct ## model config"; also C++ test fixture "Selected Json config from Qwen2.5VL-3B"), the
# 7B text numbers in huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct-AWQ/blob/main/config.json (same architecture) and the
# 7B module shapes in acproject/duorou docs/qwen2.5vl_graph.md. Both share the 32-block, 1280-wide vision tower.
# The parameter counts they give here on the meta device, 3,754,622,976 and 8,292,166,656, are the published 3.75B/8.29B.
VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
              temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2)
ARCHS = {
    '3b': dict(text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, vocab_size=151936, rope_theta=1e6, mrope_section=[16, 24, 24]),
               vision=VISION, tie_word_embeddings=True),
    '7b': dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, rope_theta=1e6, mrope_section=[16, 24, 24]),
               vision=VISION, tie_word_embeddings=False),
    # the CPU check: the same classes and code paths, 2 text layers of width 64, 2 vision blocks of width 32
    'tiny': dict(text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=1280, rope_theta=1e6, mrope_section=[2, 3, 3]),
                 vision=dict(VISION, depth=2, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[1]),
                 tie_word_embeddings=True),
}
PUBLISHED_PARAMS = {'3b': 3.75e9, '7b': 8.29e9}   # model cards: total parameters, vision tower included
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # the checkpoints' preprocessor
# Dense (no sparsity) bf16 tensor-core peaks from the vendor's spec sheets, TFLOP/s; the first matching substring wins.
PEAK_BF16_TFLOPS = [('H100 PCIe', 756.0), ('H100 NVL', 835.0), ('H100', 989.4), ('H200', 989.4), ('H800', 989.4),
                    ('B200', 2250.0), ('A100', 312.0), ('A800', 312.0), ('L40S', 362.1), ('L4', 121.0)]
GiB = 2**30

# ---------------------------------------------------------------------------------------------------------------------
# Shapes. The GPU run takes the PTST stages, micro-batch and learning rates from the vision-r1-7b preset.

def shapes(mode:str, quick:bool=False) -> dict:
    "Every size the run uses: PTST stages (name, max_completion_length, num_generations), image area, lengths, steps."
    if mode == 'cpu':
        return dict(stages=[('ptst-a', 32, 4), ('ptst-b', 64, 2)], image_px=112*112, prompt_text=24, decode=8, micro_batch=2,
                    sft_lengths=[128, 256], run_stages=[('ptst-a', 8, 4), ('ptst-b', 16, 2)], run_prompts=4,
                    run_size='tiny', steps=2)
    from vr1_nb.core import load_config
    from vr1_nb.grpo import ptst_stages
    cfg = load_config('vision-r1-7b')
    st = [(s['name'], s['section']['max_completion_length'], s['section']['num_generations']) for s in ptst_stages(cfg)]
    return dict(stages=st[:1] if quick else st, image_px=262_144, prompt_text=96, decode=64 if quick else 192,
                micro_batch=cfg['grpo']['per_device_train_batch_size'], sft_lengths=[4096] if quick else [4096, 8192],
                run_stages=[('ptst-a', 128, 4), ('ptst-b', 256, 2)], run_prompts=8, run_size='3b', steps=2)

# ---------------------------------------------------------------------------------------------------------------------
# Model, tokenizer, processor

def padded_tokenizer(vocab_size:int):
    "The project's offline tokenizer (`vr1_nb.models.get_tokenizer`) with placeholder tokens up to `vocab_size` ids."
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    from vr1_nb.models import get_tokenizer
    tok = get_tokenizer()
    if vocab_size < len(tok): raise ValueError(f"vocab_size {vocab_size} is below the tokenizer's {len(tok)} tokens")
    spec = json.loads(tok.backend_tokenizer.to_str())
    spec['model']['vocab'].update({f'<|pad{i}|>': i for i in range(len(tok), vocab_size)})  # plain BPE entries: never merged into
    out = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), eos_token=tok.eos_token,
                                  pad_token=tok.pad_token, model_max_length=131072, padding_side='left',
                                  clean_up_tokenization_spaces=False)
    out.chat_template, out._bench_base_len = tok.chat_template, len(tok)
    return out

def qwen25_vl_config(arch:dict, tok):
    "A `Qwen2_5_VLConfig` from an `ARCHS` entry, with the special-token ids of `tok`."
    from transformers import Qwen2_5_VLConfig
    t = dict(arch['text']); tie = arch['tie_word_embeddings']
    rope = dict(rope_type='default', rope_theta=t.pop('rope_theta'), mrope_section=t.pop('mrope_section'))
    ids = {k: tok.convert_tokens_to_ids(s) for k, s in [('image_token_id', '<|image_pad|>'), ('video_token_id', '<|video_pad|>'),
           ('vision_start_token_id', '<|vision_start|>'), ('vision_end_token_id', '<|vision_end|>')]}
    text = dict(t, max_position_embeddings=128000, rms_norm_eps=1e-6, rope_parameters=rope, tie_word_embeddings=tie,
                bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(arch['vision'], out_hidden_size=t['hidden_size'], hidden_act='silu', in_channels=3)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tie, **ids)

def make_processor(tok, max_pixels:int):
    "An image-only `Qwen2_5_VLProcessor` (`vr1_nb.models.make_processor`) capped at `max_pixels`, CLIP normalisation."
    from vr1_nb.models import make_image_processor, make_processor as mk
    ip = make_image_processor(min_pixels=56*56, max_pixels=max_pixels, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return mk(tok, ip, processor_class='Qwen2_5_VLProcessor')

def build_model(arch:dict, tok, device:str='cpu', dtype=None, seed:int=0):
    "A randomly initialised `Qwen2_5_VLForConditionalGeneration` on `device` ('meta': shapes only, no memory)."
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    cfg = qwen25_vl_config(arch, tok)
    old = torch.get_default_dtype()
    if dtype is not None: torch.set_default_dtype(dtype)
    try:
        with torch.random.fork_rng(devices=[]), torch.device(device):
            torch.manual_seed(seed)
            model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, attn_implementation='sdpa')
    finally: torch.set_default_dtype(old)
    model.generation_config = GenerationConfig(eos_token_id=[tok.eos_token_id], pad_token_id=tok.pad_token_id,
                                               bos_token_id=tok.pad_token_id)
    return model.eval()

def count_params(model) -> dict:
    "Total parameters (tied weights once) and the vision tower's."
    from vr1_nb.models import count_params as cp, vision_tower
    return {'total': cp(model), 'vision': cp(vision_tower(model))}

# ---------------------------------------------------------------------------------------------------------------------
# FLOPs from the config numbers (a multiply-add = 2 FLOPs; norms, activations, softmax and biases left out)

def text_layer_matmul_params(t:dict) -> int:
    "Weights one decoder layer multiplies each token by: q, k, v, o projections and the gated MLP."
    d, nh, kv = t['hidden_size'], t['num_attention_heads'], t['num_key_value_heads']; hd = d // nh
    return d*nh*hd + 2*d*kv*hd + nh*hd*d + 3*d*t['intermediate_size']

def vision_matmul_params(v:dict, out_hidden:int) -> dict:
    "Vision weights per patch (patch embedding + blocks) and per merged token (the merger MLP)."
    dv, m2 = v['hidden_size'], v['spatial_merge_size']**2
    per_patch = 3*v['temporal_patch_size']*v['patch_size']**2*dv + v['depth']*(4*dv*dv + 3*dv*v['intermediate_size'])
    return {'per_patch': per_patch, 'per_merged': (m2*dv)**2 + m2*dv*out_hidden}

def flops_text(t:dict, tokens:int, ctx_sum:int, logit_tokens:int, passes:float=1.0) -> float:
    """Forward FLOPs of the language model over `tokens` tokens whose attention spans add up to `ctx_sum` keys, with the
    LM head on `logit_tokens` of them; times `passes` (1 forward, 3 forward+backward, 2 forward+input-gradients only)."""
    L, q = t['num_hidden_layers'], t['num_attention_heads'] * (t['hidden_size'] // t['num_attention_heads'])
    fwd = 2*L*text_layer_matmul_params(t)*tokens + 4*L*q*ctx_sum + 2*t['hidden_size']*t['vocab_size']*logit_tokens
    return passes * fwd

def flops_vision(v:dict, out_hidden:int, grid_thw) -> float:
    "Forward FLOPs of the vision tower on images of patch grids `grid_thw` (window attention except the full blocks)."
    mm, dv, total = vision_matmul_params(v, out_hidden), v['hidden_size'], 0.0
    win = (v['window_size'] // v['patch_size'])**2
    for t, h, w in grid_thw:
        p = int(t)*int(h)*int(w); n_full = len(v['fullatt_block_indexes'])
        attn = 4*dv*p*(n_full*p + (v['depth'] - n_full)*min(win, p))
        total += 2*mm['per_patch']*p + 2*mm['per_merged']*p // v['spatial_merge_size']**2 + attn
    return total

def causal_ctx(n:int, start:int=0) -> int:
    "Sum of attention spans of tokens start+1 .. start+n (each attends to itself and all before it)."
    return n*start + n*(n+1)//2

def training_passes(train:str) -> float:
    "Model-FLOP multiplier of a training step: full 3 (forward + both backward matmuls), LoRA 2 (no weight gradients)."
    return {'full': 3.0, 'lora': 2.0}[train]

# ---------------------------------------------------------------------------------------------------------------------
# Device probes

class Device:
    "Timing and memory on the run's device (CUDA: allocator counters; CPU: resident set size)."
    def __init__(self, name:str):
        import torch
        self.name, self.torch = name, torch
        self.cuda = name.startswith('cuda')
    def sync(self):
        if self.cuda: self.torch.cuda.synchronize()
    def reset_peak(self):
        if self.cuda: self.torch.cuda.reset_peak_memory_stats()
    def mem(self) -> dict:
        if self.cuda: return {'allocated_gib': self.torch.cuda.memory_allocated() / GiB,
                              'reserved_gib': self.torch.cuda.memory_reserved() / GiB}
        import psutil
        return {'rss_gib': psutil.Process().memory_info().rss / GiB}
    def peak(self) -> dict:
        if self.cuda: return {'peak_allocated_gib': self.torch.cuda.max_memory_allocated() / GiB,
                              'peak_reserved_gib': self.torch.cuda.max_memory_reserved() / GiB}
        return {'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB}  # process-wide: never reset
    def free(self):
        gc.collect()
        if self.cuda: self.torch.cuda.empty_cache()
    def gpu_name(self) -> str:
        return self.torch.cuda.get_device_name(0) if self.cuda else platform.processor() or platform.machine()

def spec_peak_tflops(gpu:str) -> float|None:
    "The card's dense bf16 peak from `PEAK_BF16_TFLOPS`, or None for an unknown card (or a CPU)."
    return next((v for k, v in PEAK_BF16_TFLOPS if k.lower() in gpu.lower()), None)

def matmul_tflops(dev:Device, n:int, dtype, reps:int=10) -> float:
    "Measured TFLOP/s of an n x n x n matrix product on the device (the attainable peak MFU is read against)."
    torch = dev.torch
    a = torch.randn(n, n, device=dev.name, dtype=dtype); b = torch.randn(n, n, device=dev.name, dtype=dtype)
    for _ in range(3): a @ b
    dev.sync(); t0 = time.perf_counter()
    for _ in range(reps): a @ b
    dev.sync()
    return 2*n**3*reps / (time.perf_counter() - t0) / 1e12

def mfu(flops:float, seconds:float, peaks:dict) -> dict:
    "Achieved TFLOP/s and its fraction of each known peak."
    tf = flops / seconds / 1e12 if seconds > 0 else float('nan')
    return {'tflops': tf, **{f'mfu_{k}': (tf / p if p else None) for k, p in peaks.items()}}

def probe(dev:Device):
    "A TrainerCallback: memory at every train start (each PTST stage), time and memory (start, peak) of every optimizer step."
    from transformers import TrainerCallback
    class Probe(TrainerCallback):
        def __init__(self): self.dev, self.starts, self.steps, self._t, self._tok = dev, [], [], None, 0
        def on_train_begin(self, args, state, control, **kw):
            self.dev.sync(); self.starts.append({'global_step': state.global_step, **self.dev.mem()})
        def on_step_begin(self, args, state, control, **kw):
            self.dev.sync(); self.dev.reset_peak(); self._tok = state.num_input_tokens_seen
            self._mem = {f'step_start_{k}': v for k, v in self.dev.mem().items()}; self._t = time.perf_counter()
        def on_step_end(self, args, state, control, **kw):
            self.dev.sync()
            self.steps.append({'s': time.perf_counter() - self._t, 'tokens': state.num_input_tokens_seen - self._tok,
                               **self._mem, **self.dev.peak()})
    return Probe()

# ---------------------------------------------------------------------------------------------------------------------
# Inputs: random images at the pixel cap, prompts of random token ids

def random_image(px:int, seed:int=0):
    "A random RGB image of about `px` pixels (square)."
    import numpy as np
    from PIL import Image
    side = int(math.isqrt(px))
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))

def plain_ids(tok, placeholders:bool=True) -> list[int]:
    "Ids that are neither special tokens nor reasoning tags (safe random text); without the `<|padN|>` placeholders if asked."
    if not hasattr(tok, '_bench_ids'):
        from vr1_nb.models import QWEN_VL_SPECIAL_TOKENS, REASONING_TAGS
        bad = set(tok.convert_tokens_to_ids(QWEN_VL_SPECIAL_TOKENS + REASONING_TAGS))
        n = getattr(tok, '_bench_base_len', len(tok))
        tok._bench_ids = ([i for i in range(len(tok)) if i not in bad], [i for i in range(n) if i not in bad])
    return tok._bench_ids[0 if placeholders else 1]

def random_text(tok, n:int, seed:int=0) -> str:
    "Text of about `n` tokens of the trained vocabulary (decoded random ids, placeholders left out)."
    import random
    return tok.decode(random.Random(seed).choices(plain_ids(tok, placeholders=False), k=n))

def generation_inputs(proc, image, n_text:int, batch:int, device:str, seed:int=0) -> dict:
    "Processor outputs for `batch` copies of one prompt: the image, then `n_text` random token ids, then the turn end."
    import torch
    msgs = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'Q'}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[image], return_tensors='pt')
    ids = enc['input_ids'][0]; q = int((ids == proc.tokenizer.convert_tokens_to_ids('Q')).nonzero()[-1])
    pool = torch.tensor(plain_ids(proc.tokenizer))
    rand = pool[torch.randint(len(pool), (n_text,), generator=torch.Generator().manual_seed(seed))]
    ids = torch.cat([ids[:q], rand, ids[q+1:]]).unsqueeze(0).repeat(batch, 1)
    return {'input_ids': ids.to(device), 'attention_mask': torch.ones_like(ids).to(device),
            'pixel_values': enc['pixel_values'].repeat(batch, 1).to(device),
            'image_grid_thw': enc['image_grid_thw'].repeat(batch, 1).to(device)}

def image_grid(proc, image) -> list:
    "The (t, h, w) patch grid the processor makes of `image`."
    return proc.image_processor(images=[image], return_tensors='pt')['image_grid_thw'].tolist()

def records(tok, n:int, image_px:int, q_tokens:int, response_tokens:int=0, seed:int=0) -> list[dict]:
    "Schema records (`vr1_nb.core`) with one random image, a random question and (for SFT) a random response."
    out = []
    for i in range(n):
        r = {'id': f'bench-{i}', 'images': [random_image(image_px, seed + i)], 'question': random_text(tok, q_tokens, seed + i),
             'answer': '1'}
        if response_tokens: r['response'] = random_text(tok, response_tokens, 1000 + seed + i)
        out.append(r)
    return out

# ---------------------------------------------------------------------------------------------------------------------
# Measurements

def bench_generation(model, proc, arch:dict, dev:Device, sh:dict, peaks:dict) -> list[dict]:
    """HF generation tokens/s at each PTST stage's shape, every sampling parameter stated: decoding from the start of the
    completion and from `decode` tokens before its end; prefill measured as a 1-token generation."""
    import torch
    img, rows = random_image(sh['image_px']), []
    gen = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, min_p=None, repetition_penalty=1.0, use_cache=True,
               pad_token_id=proc.tokenizer.pad_token_id, eos_token_id=proc.tokenizer.eos_token_id)
    def run(inp, n):
        dev.sync(); t0 = time.perf_counter()
        with torch.inference_mode(): out = model.generate(**inp, max_new_tokens=n, min_new_tokens=n, **gen)
        dev.sync(); return time.perf_counter() - t0, out.shape[1] - inp['input_ids'].shape[1]
    run(generation_inputs(proc, img, 8, 1, dev.name), 2)  # warm-up (kernels, allocator)
    for name, max_len, gens in sh['stages']:
        n = min(sh['decode'], max_len)
        for where, extra in (('start', 0), ('end', max_len - n)):
            inp = generation_inputs(proc, img, sh['prompt_text'] + extra, gens, dev.name)
            P = inp['input_ids'].shape[1]; dev.reset_peak()
            t1, _ = run(inp, 1); tn, got = run(inp, n)
            if got != n: raise RuntimeError(f"generation stopped after {got} of {n} tokens (min_new_tokens was ignored)")
            dec = max(tn - t1, 1e-9)
            fl = gens * flops_text(arch['text'], n - 1, causal_ctx(n - 1, P + 1), n - 1)   # decode steps 2..n
            rows.append({'stage': name, 'max_completion_length': max_len, 'batch': gens, 'from': where, 'prompt_tokens': P,
                         'new_tokens': n, 'prefill_s': t1, 'decode_s': dec, 'decode_tokens_per_s': gens*(n - 1)/dec,
                         'tokens_per_s': gens*n/tn, **mfu(fl, dec, peaks), **dev.peak()})
        s, e = rows[-2], rows[-1]   # time per decode step grows linearly with the context: average start and end
        step = (s['decode_s']/(s['new_tokens'] - 1) + e['decode_s']/(e['new_tokens'] - 1)) / 2
        e['est_stage_generation_s'] = s['prefill_s'] + max_len * step   # one generation batch of this stage, HF backend
    return rows

def _trainer_common(dev:Device, out) -> dict:
    gpu = dev.cuda
    return dict(output_dir=str(out), max_steps=None, gradient_accumulation_steps=1, logging_steps=1, save_strategy='no',
                report_to='none', bf16=gpu, use_cpu=not gpu, gradient_checkpointing=True, dataloader_num_workers=0,
                disable_tqdm=True)

def bench_sft(model, proc, arch:dict, dev:Device, sh:dict, peaks:dict, train:str, length:int, work:Path) -> dict:
    "Time and peak memory of one SFT step (TRL's SFTTrainer, `vr1_nb.sft` dataset and config) on image+text examples."
    from trl import SFTTrainer
    from vr1_nb.core import load_config
    from vr1_nb.sft import sft_args, sft_dataset
    tok = proc.tokenizer
    recs = records(tok, sh['steps'], sh['image_px'], sh['prompt_text'], response_tokens=int(length * 1.2))
    sec = {k: v for k, v in (load_config('vision-r1-7b')['sft'] or {}).items() if k in ('learning_rate', 'lr_scheduler_type')}
    sec.update(_trainer_common(dev, work/'sft'), max_steps=sh['steps'], per_device_train_batch_size=1, max_length=length,
               include_num_input_tokens_seen='non_padding')
    args = sft_args({'sft': sec, 'seed': 0}, work/'sft')
    pr = probe(dev)
    tr = SFTTrainer(model=model, args=args, train_dataset=sft_dataset(recs), processing_class=proc, callbacks=[pr])
    tr.train()
    st = pr.steps[-1]
    grid = image_grid(proc, recs[0]['images'][0]); T = st['tokens'] or length
    fl = (flops_text(arch['text'], T, causal_ctx(T), T, training_passes(train))
          + flops_vision(arch['vision'], arch['text']['hidden_size'], grid))   # frozen vision tower: forward only
    del tr; dev.free()
    return {'length': length, 'train': train, 'tokens': T, 'step_s': st['s'], 'steps_timed': len(pr.steps),
            **mfu(fl, st['s'], peaks), **{k: v for k, v in st.items() if k.startswith(('peak', 'step_start'))}}

def fixed_rollout(length:int, seed:int=0):
    """A TRL `rollout_func`: the prompts tokenized by the processor as TRL does, one completion of `length` random ids
    each (TRL 1.16 hands it the per-process slice with every prompt already repeated `num_generations` times)."""
    import torch
    def rollout(prompts, trainer):
        proc = trainer.processing_class
        enc = proc.apply_chat_template(prompts, add_generation_prompt=True, tokenize=True, return_dict=True, padding=True)
        p_ids = [[int(i) for i, m in zip(ids, mask) if m] for ids, mask in zip(enc['input_ids'], enc['attention_mask'])]
        pool = torch.tensor(plain_ids(proc.tokenizer)); g = torch.Generator().manual_seed(seed + trainer.state.global_step)
        comp = [pool[torch.randint(len(pool), (length,), generator=g)].tolist() for _ in p_ids]
        return {'prompt_ids': p_ids, 'completion_ids': comp, 'logprobs': None}
    return rollout

def bench_grpo_step(model, proc, arch:dict, dev:Device, sh:dict, peaks:dict, train:str, stage, work:Path) -> dict:
    """Time and peak memory of one GRPO micro-step at a PTST stage's completion length: TRL's GRPOTrainer with the
    preset's loss, beta and micro-batch (`vr1_nb.grpo.stage_args`), completions from `fixed_rollout`."""
    import os
    from trl import GRPOTrainer
    from vr1_nb.core import load_config
    from vr1_nb.grpo import beta_schedule, grpo_dataset, ptst_stages, stage_args, _drop_ref_adapter
    from vr1_nb.rewards import hard_format_reward
    os.environ.setdefault('TRL_EXPERIMENTAL_SILENCE', '1')
    name, length, _ = stage; B = sh['micro_batch']
    g = {k: v for k, v in load_config('vision-r1-7b')['grpo'].items() if k in ('learning_rate', 'beta', 'epsilon', 'loss_type',
                                                                            'scale_rewards', 'temperature')}
    g.update(_trainer_common(dev, work/'grpo'), per_device_train_batch_size=B, num_generations=B, use_vllm=False,
             max_completion_length=length)
    cfg = {'grpo': g, 'stages': [{'name': name, 'max_steps': sh['steps']}]}
    st = ptst_stages(cfg)[0]
    args = stage_args(st, work/'grpo', beta_schedule(None, st['end'], g['beta']))
    recs = records(proc.tokenizer, sh['steps'], sh['image_px'], sh['prompt_text'])
    pr = probe(dev)
    tr = GRPOTrainer(model=model, reward_funcs=[hard_format_reward], args=args, train_dataset=grpo_dataset(recs),
                     processing_class=proc, callbacks=[pr], rollout_func=fixed_rollout(length))
    tr.train()
    s = pr.steps[-1]; T = s['tokens'] // B if s['tokens'] else length; P = T - length
    grid = image_grid(proc, recs[0]['images'][0]); t, v = arch['text'], arch['vision']
    per_seq = (flops_text(t, T, causal_ctx(T), length, training_passes(train))       # policy forward + backward
               + (flops_text(t, T, causal_ctx(T), length) if args.beta else 0)      # reference forward
               + (2 if args.beta else 1) * flops_vision(v, t['hidden_size'], grid))  # frozen vision tower, forward only
    has_ref = tr.ref_model is not None
    _drop_ref_adapter(tr)   # TRL adds a 'ref' adapter to a PEFT policy; the next trainer on this model would add it again
    del tr; dev.free()
    return {'stage': name, 'max_completion_length': length, 'micro_batch': B, 'prompt_tokens': P, 'train': train,
            'beta': args.beta, 'reference_model': 'copy' if has_ref else ('adapter off' if args.beta else 'none'),
            'step_s': s['s'], 'steps_timed': len(pr.steps), **mfu(B * per_seq, s['s'], peaks),
            **{k: v for k, v in s.items() if k.startswith(('peak', 'step_start'))}}

def bench_grpo_run(ckpt:Path, tok, dev:Device, sh:dict, work:Path) -> dict:
    "The library's two-stage `grpo_run` on a saved checkpoint; memory at each stage start and each step's time."
    from vr1_nb.grpo import grpo_run, read_log
    g = dict(learning_rate=1e-6, beta=0.01, loss_type='grpo', per_device_train_batch_size=4, temperature=1.0,
             **{k: v for k, v in _trainer_common(dev, work).items() if k not in ('output_dir', 'max_steps')})
    # bf16 weights, as the per-step rows use; vr1_nb refuses low-precision full fine-tuning outside DeepSpeed unless told
    model = {'path': str(ckpt), 'freeze_vision': True, 'lora': None, 'attn_implementation': 'sdpa',
             **({'dtype': 'bfloat16', 'allow_low_precision_weights': True, 'device_map': dev.name} if dev.cuda else {})}
    cfg = {'seed': 0, 'model': model, 'grpo': g, 'rewards': {'funcs': ['hard_format_reward']}, 'monitor': {'enabled': False},
           'stages': [{'name': n, 'max_completion_length': c, 'num_generations': k, 'max_steps': 1} for n, c, k in sh['run_stages']]}
    pr = probe(dev); dev.free(); before = dev.mem()
    t0 = time.perf_counter()
    final = grpo_run(cfg, records(tok, sh['run_prompts'], sh['image_px'], sh['prompt_text']), work/'grpo_run', callbacks=[pr])
    wall = time.perf_counter() - t0
    log = [r for r in read_log(final.parent) if 'loss' in r]
    dev.free()
    return {'stages': [dict(name=n, max_completion_length=c, num_generations=k) for n, c, k in sh['run_stages']],
            'before': before, 'stage_start': pr.starts, 'steps': pr.steps, 'wall_s': wall, 'log_rows': len(log),
            'final': final.name, 'after': dev.mem()}

# ---------------------------------------------------------------------------------------------------------------------
# Runs

def real_shape_check(sizes=('3b', '7b')) -> dict:
    "Each real size built on the meta device: parameter counts against the published ones, FLOPs per token."
    import torch
    out = {}
    for size in sizes:
        arch = ARCHS[size]; tok = padded_tokenizer(arch['text']['vocab_size'])
        model = build_model(arch, tok, 'meta')
        n = count_params(model); t = arch['text']
        out[size] = {'params': n['total'], 'vision_params': n['vision'], 'published': PUBLISHED_PARAMS[size],
                     'rel_error': n['total'] / PUBLISHED_PARAMS[size] - 1, 'tokenizer_len': len(tok),
                     'meta': all(p.device.type == 'meta' for p in model.parameters()),
                     'train_flops_per_token_4k': flops_text(t, 4096, causal_ctx(4096), 4096, 3.0) / 4096,
                     'decode_flops_per_token_at_4k': flops_text(t, 1, 4096, 1)}
        del model
    return out

def save_checkpoint(model, proc, path:Path) -> Path:
    "Save model + processor (`vr1_nb.models.save_model`) so TRL can load the reference model and grpo_run the policy."
    from vr1_nb.models import save_model
    save_model(model, proc, path); model.config._name_or_path = str(path)
    return path

class Run:
    "One benchmark run: the device, shapes, peaks, scratch folder, results so far, saved after every measurement."
    def __init__(self, dev:Device, sh:dict, peaks:dict, work:Path, res:dict, out:Path|None):
        self.dev, self.sh, self.peaks, self.work, self.res, self.out, self.ckpts = dev, sh, peaks, work, res, out, {}
    def save(self):
        if self.out: self.out.write_text(json.dumps(self.res, indent=1, default=str) + '\n')
    def attempt(self, where:dict, key:str, fn):
        "Run one measurement; an exception is recorded in its place (and printed) so the other measurements still run."
        try: val = fn()
        except Exception as e:
            val = {'error': f"{type(e).__name__}: {e}"[:2000]}; print(f"[{key}] {e!r}", file=sys.stderr); self.dev.free()
        if isinstance(where.get(key), list): where[key].append(val)
        else: where[key] = val
        self.save()
    def model(self, size:str):
        "A fresh random model of `size` on the device (bf16 on a GPU), its tokenizer and processor."
        import torch
        arch = ARCHS[size]; tok = padded_tokenizer(arch['text']['vocab_size'])
        model = build_model(arch, tok, self.dev.name, torch.bfloat16 if self.dev.cuda else None)
        return model, make_processor(tok, self.sh['image_px'])
    def checkpoint(self, size:str, model=None, proc=None) -> Path:
        "A saved copy of `size` (built with the same seed, so the same weights as `model`), saved once per run."
        if size not in self.ckpts:
            if model is None: model, proc = self.model(size)
            self.ckpts[size] = save_checkpoint(model, proc, self.work/f'ckpt-{size}')
        if model is not None: model.config._name_or_path = str(self.ckpts[size])
        return self.ckpts[size]

    def grpo_run(self, size:str):
        "`vr1_nb.grpo.grpo_run` on a saved `size` checkpoint, before anything else holds device memory."
        def go():
            ckpt = self.checkpoint(size); self.dev.free()
            tok = padded_tokenizer(ARCHS[size]['text']['vocab_size'])
            r = bench_grpo_run(ckpt, tok, self.dev, self.sh, self.work/'grpo_run')
            r['size'] = size; shutil.rmtree(self.work/'grpo_run', ignore_errors=True)
            return r
        self.attempt(self.res, 'grpo_run', go)

    def size(self, size:str, train:str, parts:set):
        "Every measurement for one model size and training mode, in results['sizes'][f'{size}-{train}']."
        t0 = time.perf_counter(); model, proc = self.model(size); arch, sh, dev, peaks = ARCHS[size], self.sh, self.dev, self.peaks
        r = self.res.setdefault('sizes', {})[f'{size}-{train}'] = {'size': size, 'train': train, 'build_s': time.perf_counter() - t0,
                                                                   **count_params(model), 'weights': dev.mem()}
        work = self.work/f'{size}-{train}'
        if 'gen' in parts: self.attempt(r, 'generation', lambda: bench_generation(model, proc, arch, dev, sh, peaks))
        if train == 'full' and 'grpo' in parts: self.checkpoint(size, model, proc)   # TRL loads the reference model from it
        if train == 'lora':
            from vr1_nb.models import apply_lora
            model = apply_lora(model)
        if 'sft' in parts:
            r['sft_step'] = []
            for L in sh['sft_lengths']:
                self.attempt(r, 'sft_step', lambda: bench_sft(model, proc, arch, dev, sh, peaks, train, L, work))
        if 'grpo' in parts:
            r['grpo_step'] = []
            for st in sh['stages']:
                self.attempt(r, 'grpo_step', lambda: bench_grpo_step(model, proc, arch, dev, sh, peaks, train, st, work))
        del model; dev.free(); shutil.rmtree(work, ignore_errors=True)

def environment(dev:Device) -> dict:
    import torch, transformers, trl, peft, accelerate, datasets
    return {'device': dev.gpu_name(), 'torch': torch.__version__, 'cuda': torch.version.cuda, 'transformers': transformers.__version__,
            'trl': trl.__version__, 'peft': peft.__version__, 'accelerate': accelerate.__version__, 'datasets': datasets.__version__,
            'python': platform.python_version(), 'cpus': os.cpu_count(),
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}

def slug(s:str) -> str: return re.sub(r'[^A-Za-z0-9.]+', '-', s).strip('-')

def run(mode:str, work:Path, out_dir:Path|None, sizes:list, parts:set, quick:bool=False, peak_tflops=None) -> dict:
    "The benchmark: `mode` 'cpu' (tiny shapes, CPU) or 'gpu'; `sizes` a list of (size, 'full'|'lora')."
    import torch
    dev = Device('cuda' if mode == 'gpu' else 'cpu'); sh = shapes(mode, quick)
    if mode == 'gpu':
        peaks = {'spec': peak_tflops or spec_peak_tflops(dev.gpu_name()), 'measured_matmul': matmul_tflops(dev, 8192, torch.bfloat16)}
    else: peaks = {'spec': peak_tflops, 'measured_matmul': matmul_tflops(dev, 256, torch.float32)}
    stamp = datetime.date.today().isoformat() + ('-quick' if quick else '')
    out = (Path(out_dir)/f"gpu_bench-{slug(dev.gpu_name()) if mode == 'gpu' else 'cpu-check'}-{stamp}.json") if out_dir else None
    if out: out.parent.mkdir(parents=True, exist_ok=True)
    res = {'mode': mode + ('-quick' if quick else ''), 'env': environment(dev), 'peaks_tflops': peaks, 'shapes': sh,
           'real_shapes': real_shape_check(), 'file': str(out) if out else None}
    R = Run(dev, sh, peaks, work, res, out); R.save()
    if 'grpo_run' in parts: R.grpo_run(sh['run_size'])   # first: nothing else holds device memory yet
    for size, train in sizes: R.size(size, train, parts)
    return res

def table(res:dict) -> str:
    "The results as a plain-text table (memory: CUDA allocator at step start -> peak, or the process's RSS on CPU)."
    e, pk = res['env'], res['peaks_tflops']
    f = lambda x, p=2: '-' if x is None else f"{x:.{p}f}"
    mem = lambda x: (f(x.get('step_start_allocated_gib', x.get('step_start_rss_gib')), 1) + ' -> '
                     + f(x.get('peak_allocated_gib', x.get('peak_rss_gib')), 1))
    use = lambda x: f"MFU {f(x.get('mfu_spec'), 3)} of spec, {f(x.get('mfu_measured_matmul'), 3)} of measured matmul"
    L = [f"{e['device']} | torch {e['torch']} | transformers {e['transformers']} | trl {e['trl']} | peak: spec "
         f"{f(pk.get('spec'), 0)} TFLOP/s, measured matmul {f(pk['measured_matmul'], 3 if pk['measured_matmul'] < 10 else 0)}"]
    err = lambda x: f"ERROR {x['error'][:200]}"
    for key, r in res.get('sizes', {}).items():
        L.append(f"\n{key}: {r['total']:,} parameters ({r['vision']:,} vision), built in {r['build_s']:.1f} s")
        g = r.get('generation', [])
        if isinstance(g, dict): L.append(f"  generate  {err(g)}"); g = []
        for x in g:
            L.append(f"  generate  {x['stage']:7s} batch {x['batch']:2d} from {x['from']:5s} (context {x['prompt_tokens']:5d}): "
                     f"{x['decode_tokens_per_s']:8.1f} tok/s, prefill {x['prefill_s']:.2f} s, {use(x)}"
                     + (f"; est. one stage generation batch {x['est_stage_generation_s']:.1f} s"
                        if 'est_stage_generation_s' in x else ''))
        for x in r.get('sft_step', []):
            L.append(f"  sft       {err(x)}" if 'error' in x else
                     f"  sft       {x['tokens']:5d} tokens: {x['step_s']:.3f} s/step, memory {mem(x)} GiB, {use(x)}")
        for x in r.get('grpo_step', []):
            L.append(f"  grpo      {err(x)}" if 'error' in x else
                     f"  grpo      {x['stage']:7s} {x['micro_batch']} x ({x['prompt_tokens']} + {x['max_completion_length']}) tokens: "
                     f"{x['step_s']:.3f} s/micro-step, memory {mem(x)} GiB, {use(x)}, reference: {x['reference_model']}")
    g = res.get('grpo_run')
    if g:
        L.append(f"\ngrpo_run {g.get('size', '')}, two PTST stages" + (f": {err(g)}" if 'error' in g else f", {g['wall_s']:.1f} s"))
        for i, s in enumerate(g.get('stage_start', [])):
            L.append(f"  stage {i} start: " + ', '.join(f"{k} {v:.2f}" for k, v in s.items() if k.endswith('gib')))
        for i, s in enumerate(g.get('steps', [])):
            L.append(f"  step {i}: {s['s']:.2f} s, memory {mem(s)} GiB")
    return '\n'.join(L)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cpu-check', action='store_true', help="real shapes on the meta device + every measurement, tiny, on CPU")
    ap.add_argument('--quick', action='store_true', help="GPU: 3B only, the first PTST stage, SFT at 4K only, 64 decode tokens")
    ap.add_argument('--sizes', default='3b=full,7b=lora',
                    help="GPU: size=full|lora pairs (7B full fine-tuning with a reference copy does not fit one 80 GB card)")
    ap.add_argument('--parts', default='gen,sft,grpo,grpo_run', help="which measurements (comma-separated)")
    ap.add_argument('--peak-tflops', type=float, default=None, help="the card's dense bf16 peak, when not in PEAK_BF16_TFLOPS")
    ap.add_argument('--out', default=None, help="folder for the JSON results (GPU default: bench/results; --cpu-check: none)")
    ap.add_argument('--workdir', default=None, help="scratch folder for checkpoints (default: a temporary one, removed at the end)")
    a = ap.parse_args(argv)
    if a.cpu_check: mode, sizes, out = 'cpu', [('tiny', 'full'), ('tiny', 'lora')], a.out
    else:
        import torch
        if not torch.cuda.is_available(): sys.exit("gpu_bench: no CUDA device here; on a machine without a GPU run --cpu-check")
        mode, out = 'gpu', a.out or REPO/'bench'/'results'
        sizes = [tuple(kv.split('=')) for kv in a.sizes.split(',')]
        if a.quick: sizes = [x for x in sizes if x[0] == '3b'] or [('3b', 'full')]
    bad = [x for x in sizes if x[0] not in ARCHS or len(x) != 2 or x[1] not in ('full', 'lora')]
    if bad: sys.exit(f"gpu_bench: --sizes wants size=full|lora pairs with sizes from {sorted(ARCHS)}, got {a.sizes!r}")
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix='vr1-gpu-bench-'))
    t0 = time.perf_counter()
    try: res = run(mode, work, out, sizes, set(a.parts.split(',')), a.quick, a.peak_tflops)
    finally:
        if not a.workdir: shutil.rmtree(work, ignore_errors=True)
    res['wall_s'] = time.perf_counter() - t0
    if res['file']: Path(res['file']).write_text(json.dumps(res, indent=1, default=str) + '\n')
    print(table(res), file=sys.stderr)
    print(json.dumps(res, default=str))
    return res

if __name__ == '__main__': main()
