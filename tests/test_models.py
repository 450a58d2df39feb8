"Behaviour tests for vr1_nb.models: the tiny offline Qwen2-VL, its tokenizer, the processor layer, loading and LoRA."
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

os.environ.setdefault('HF_HUB_OFFLINE', '1')
torch.set_num_threads(1)

from vr1_nb import models as M


@pytest.fixture(scope='module')
def tok(): return M.train_tokenizer()

@pytest.fixture(scope='module')
def built(tok): return M.build_tiny_model('tiny', tok, seed=0)

@pytest.fixture(scope='module')
def saved(built, tmp_path_factory):
    return M.save_model(*built, tmp_path_factory.mktemp('m')/'tiny')

def _image(px=112):
    im = Image.new('RGB', (px, px), 'white')
    d = ImageDraw.Draw(im); d.ellipse((10, 10, 40, 40), fill='red'); d.rectangle((60, 60, 100, 100), fill='blue')
    return im


# --- tokenizer -------------------------------------------------------------------------------------------------
def test_tokenizer_roundtrip_with_special_tokens(tok, tmp_path):
    s = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many? 12 × 3 = 36°<|im_end|>\n<think>Wait</think><answer>36</answer>"
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer
    t2 = AutoTokenizer.from_pretrained(tmp_path)
    assert t2(s).input_ids == tok(s).input_ids
    assert t2.decode(t2(s).input_ids) == s
    for t in M.QWEN_VL_SPECIAL_TOKENS + M.REASONING_TAGS:  # each one token, same id after reload
        assert len(tok(t).input_ids) == 1 and t2.convert_tokens_to_ids(t) == tok.convert_tokens_to_ids(t)
    assert t2.eos_token == '<|im_end|>' and t2.pad_token == '<|endoftext|>'
    assert t2.chat_template == tok.chat_template
    # tags are kept by skip_special_tokens (rewards read them), chat markers are dropped
    out = t2.decode(t2(s).input_ids, skip_special_tokens=True)
    assert '<think>' in out and '</answer>' in out and '<|im_start|>' not in out and '<|image_pad|>' not in out


def test_tokenizer_deterministic_and_corpus_sensitive():
    texts = ["The image shows 3 red circles. Wait, check: 3 + 4 = 7."] * 20 + ["Hmm, the bar chart's maximum is 9."] * 10
    a, b = M.train_tokenizer(texts, vocab_size=400), M.train_tokenizer(list(texts), vocab_size=400)
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    c = M.train_tokenizer(texts + ["completely different words about zebras and giraffes"] * 30, vocab_size=400)
    assert c.backend_tokenizer.to_str() != a.backend_tokenizer.to_str()
    with pytest.raises(ValueError, match='empty'): M.train_tokenizer([])


def test_tokenizer_same_in_a_fresh_process(tok):
    "Rust hash maps are randomly seeded per process: the trained vocabulary must not depend on it."
    code = "from vr1_nb.models import _train_bpe, default_corpus; import sys; sys.stdout.write(_train_bpe(default_corpus(), 1024, 2).to_str())"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env={**os.environ, 'OMP_NUM_THREADS': '1'}).stdout
    ours = json.loads(tok.backend_tokenizer.to_str())
    assert {k: v for k, v in json.loads(out).items() if k != 'post_processor'} == {k: v for k, v in ours.items() if k != 'post_processor'}


def test_any_text_encodes_and_digits_split(tok):
    for s in ["naïve café 日本 🙂 ∮∑", "x^2 + y^2 = r^2", "\t\n  spaces  "]:
        assert tok.decode(tok(s).input_ids) == s
    assert tok.tokenize('1234') == ['1', '2', '3', '4']


def test_chat_template(tok):
    msgs = [{'role': 'system', 'content': 'Be brief.'},
            {'role': 'user', 'content': [{'type': 'image', 'image': _image()}, {'type': 'text', 'text': 'Count.'}]},
            {'role': 'assistant', 'content': [{'type': 'text', 'text': '<answer>2</answer>'}]}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                    "Count.<|im_end|>\n<|im_start|>assistant\n<answer>2</answer><|im_end|>\n")
    gen = tok.apply_chat_template(msgs[1:2], tokenize=False, add_generation_prompt=True)
    assert gen.endswith('<|im_start|>assistant\n') and not gen.startswith('<|im_start|>system')


# --- processor ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('px,tokens', [(112, 16), (224, 64), (168, 36), (1000, 64)])
def test_visual_token_budget(built, px, tokens):
    _, proc = built
    text = proc.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'q'}]}],
                                    tokenize=False, add_generation_prompt=True)
    enc = proc(text=[text], images=[_image(px)], return_tensors='pt')
    assert int((enc['input_ids'] == proc.image_token_id).sum()) == tokens
    assert enc['pixel_values'].shape[0] == tokens * 4  # 2x2 patches merged per token


def test_autoprocessor_tokenizer_only_is_detected(saved, tmp_path):
    import shutil
    from transformers import AutoProcessor, ProcessorMixin
    d = tmp_path/'ckpt'; shutil.copytree(saved, d)
    cfg = json.loads((d/'processor_config.json').read_text())
    (d/'processor_config.json').write_text(json.dumps({**cfg, 'processor_class': 'SomeCustomProcessor'}))
    raw = AutoProcessor.from_pretrained(d)
    assert not isinstance(raw, ProcessorMixin)            # the silent failure this layer exists for
    assert not M.is_image_processor(raw)
    p = M.load_processor(d)
    assert M.is_image_processor(p) and type(p).__name__ == 'ImageOnlyQwen2VLProcessor'


def test_load_processor_handles_autoprocessor_raising(saved, monkeypatch):
    import transformers
    def boom(*a, **k): raise ImportError("Qwen2VLVideoProcessor requires the Torchvision library")
    monkeypatch.setattr(transformers.AutoProcessor, 'from_pretrained', boom)
    assert M.is_image_processor(M.load_processor(saved))


def test_load_processor_uses_autoprocessor_when_it_works(saved, built, monkeypatch):
    # Here AutoProcessor raises (no torchvision), so this stands in a real full processor for it and checks what
    # load_processor does with one: pass the caller's kwargs, apply the pixel overrides to it, never take the fallback.
    # tests/test_torchvision_path.py runs the real AutoProcessor where torchvision imports.
    import copy, transformers
    full, calls = copy.deepcopy(built[1]), []
    monkeypatch.setattr(transformers.AutoProcessor, 'from_pretrained', lambda path, **k: calls.append((path, k)) or full)
    def no_fallback(*a, **k): raise AssertionError('the image-only fallback was used although AutoProcessor worked')
    monkeypatch.setattr(M, '_image_only_from_dir', no_fallback)
    shortest = full.image_processor.size['shortest_edge']
    p = M.load_processor(saved, max_pixels=112*112, revision='main')
    assert p is full and calls == [(saved, {'revision': 'main'})]
    assert p.image_processor.size == {**p.image_processor.size, 'shortest_edge': shortest, 'longest_edge': 112*112}
    text = p.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}]}], tokenize=False)
    assert int((p(text=[text], images=[_image(224)], return_tensors='pt')['input_ids'][0] == p.image_token_id).sum()) == 16


def test_text_only_checkpoint_is_an_error(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match='no image processor configuration'): M.load_processor(tmp_path)


def test_saved_processor_looks_standard(saved):
    cfg = json.loads((saved/'processor_config.json').read_text())
    assert cfg['processor_class'] == 'Qwen2VLProcessor'
    assert cfg['video_processor']['video_processor_type'] == 'Qwen2VLVideoProcessor'
    assert cfg['image_processor']['size'] == {'shortest_edge': M.TINY_MIN_PIXELS, 'longest_edge': M.TINY_MAX_PIXELS}


def test_pixel_overrides(saved):
    p = M.load_processor(saved, max_pixels=112*112)
    text = p.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}]}], tokenize=False)
    assert int((p(text=[text], images=[_image(224)], return_tensors='pt')['input_ids'][0] == p.image_token_id).sum()) == 16


# --- model -------------------------------------------------------------------------------------------------------
def test_presets_sizes(tok):
    m, _ = M.build_tiny_model('tiny', tok)
    assert 100_000 < M.count_params(m) < 1_000_000
    small = M.tiny_config('small', tok)
    assert small.text_config.hidden_size == 256 and small.vision_config.depth == 4 and small.vision_config.embed_dim == 128
    with pytest.raises(ValueError, match='choose one of'): M.build_tiny_model('huge', tok)


def test_build_is_seeded(tok, built):
    same, _ = M.build_tiny_model('tiny', tok, seed=0)
    other, _ = M.build_tiny_model('tiny', tok, seed=1)
    a, b, c = (list(m.state_dict().values()) for m in (built[0], same, other))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_save_reload_identical_outputs(built, saved):
    model, proc = built
    m2, p2 = M.load_model(saved)
    text = proc.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'How many?'}]}],
                                    tokenize=False, add_generation_prompt=True)
    e1 = proc(text=[text], images=[_image()], return_tensors='pt')
    e2 = p2(text=[text], images=[_image()], return_tensors='pt')
    assert torch.equal(e1['input_ids'], e2['input_ids']) and torch.allclose(e1['pixel_values'], e2['pixel_values'])
    with torch.no_grad(): l1, l2 = model(**e1).logits, m2(**e2).logits
    assert torch.allclose(l1, l2, atol=1e-6)
    assert torch.isfinite(l1).all() and l1.shape[-1] == len(proc.tokenizer)


def test_generate_answer_on_cpu(built, tmp_path):
    model, proc = built
    p = tmp_path/'img.png'; _image().save(p)
    a = M.generate_answer(model, proc, [p], 'How many red circles are there?', max_new_tokens=6)
    b = M.generate_answer(model, proc, _image(), 'How many red circles are there?', max_new_tokens=6)
    assert isinstance(a, str) and a == b   # greedy, same image from a path or in memory
    n = len(proc.tokenizer(a, add_special_tokens=False).input_ids)
    assert n <= 6
    sampled = M.generate_answer(model, proc, [], 'text only question', max_new_tokens=4, do_sample=True, top_k=0)
    assert isinstance(sampled, str)
    with pytest.raises(FileNotFoundError, match='not found'): M.generate_answer(model, proc, [tmp_path/'no.png'], 'q')
    with pytest.raises(TypeError, match='image processor'): M.generate_answer(model, proc.tokenizer, [], 'q')


def test_missing_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='Pass a directory'): M.load_model(tmp_path/'nope')
    with pytest.raises(FileNotFoundError, match='no config.json'): M.load_model(tmp_path)
    # a hub-looking id with the hub switched off never reaches the network
    with pytest.raises(FileNotFoundError, match='HF_HUB_OFFLINE'): M.load_model('Qwen/Qwen2-VL-2B-Instruct')


def test_load_model_dtype(saved):
    m, _ = M.load_model(saved, dtype='bfloat16')
    assert next(m.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match='unknown dtype'): M.load_model(saved, dtype='float99')


def test_get_tiny_model_caches(tok, tmp_path):
    m1, _ = M.get_tiny_model('tiny', tmp_path, tokenizer=tok)
    (entry,) = list(tmp_path.iterdir())
    mtime = (entry/'model.safetensors').stat().st_mtime_ns
    m2, p2 = M.get_tiny_model('tiny', tmp_path, tokenizer=tok)
    assert (entry/'model.safetensors').stat().st_mtime_ns == mtime       # reloaded, not rebuilt
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert M.is_image_processor(p2)
    other = M.train_tokenizer(["a different corpus, so a different vocabulary"] * 5, vocab_size=300)
    assert M.tiny_model_key('tiny', other) != entry.name and M.tiny_model_key('tiny', tok, seed=1) != entry.name


# --- training helpers --------------------------------------------------------------------------------------------
def test_freeze_vision_tower(tok):
    m, _ = M.build_tiny_model('tiny', tok)
    M.freeze_vision_tower(m)
    assert all(not p.requires_grad for p in M.vision_tower(m).parameters())
    assert all(p.requires_grad for n, p in m.named_parameters() if 'visual' not in n)


def test_lora_targets_language_model_only(tok):
    pm = M.apply_lora(M.build_tiny_model('tiny', tok)[0], r=4, alpha=8)
    train = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert train and all('lora_' in n and 'visual' not in n for n in train)
    assert {n.split('.')[-4] for n in train} == {'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'}
    full = M.apply_lora(M.build_tiny_model('tiny', tok)[0], r=4, alpha=8, freeze_vision=False)
    assert any('visual' in n and p.requires_grad for n, p in full.named_parameters())


def test_unsloth_missing_is_a_clear_error():
    pytest.importorskip('torch')
    try: import unsloth  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match='requirements/unsloth.txt'): M.load_unsloth('Qwen/Qwen2-VL-2B-Instruct')
    else: pytest.skip('unsloth installed')


def test_get_tokenizer_caches(tmp_path):
    texts = ["Wait, the triangle's area is 6. Check: 3 × 4 / 2 = 6."] * 10
    t1 = M.get_tokenizer(texts, vocab_size=300, cache_dir=tmp_path)
    (entry,) = list(tmp_path.iterdir())
    assert (entry/'.complete').exists() and (entry/'tokenizer.json').exists()
    t2 = M.get_tokenizer(texts, vocab_size=300, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    assert t1.backend_tokenizer.to_str() == t2.backend_tokenizer.to_str() == M.train_tokenizer(texts, 300).backend_tokenizer.to_str()
    assert t2.padding_side == 'left' and t2.chat_template == M.QWEN_VL_CHAT_TEMPLATE


def test_incomplete_cache_entry_is_rebuilt_or_reported(tok, tmp_path):
    key = M.tiny_model_key('tiny', tok)
    (tmp_path/key).mkdir(parents=True); (tmp_path/key/'junk').write_text('x')   # e.g. a crashed writer
    with pytest.raises(FileNotFoundError, match='incomplete'): M.get_tiny_model('tiny', tmp_path, tokenizer=tok)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]       # no temporary litter


# --- TRL consumes the model and processor ------------------------------------------------------------------------
def _trl_rows(n=4):
    return [{'prompt': [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'How many red circles?'}]}],
             'images': [_image()], 'answer': str(i % 3)} for i in range(n)]


def test_trl_grpo_step(tok, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    model, proc = M.get_tiny_model('tiny', tmp_path/'cache', tokenizer=tok)
    def reward(completions, answer, **kw): return [float(c[0]['content'].strip() == a) for c, a in zip(completions, answer)]
    args = GRPOConfig(output_dir=str(tmp_path/'out'), per_device_train_batch_size=2, num_generations=2, max_completion_length=6,
                      max_steps=1, beta=0.04, report_to='none', use_cpu=True, bf16=False, save_strategy='no', disable_tqdm=True)
    tr = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_list(_trl_rows()), processing_class=proc)
    tr.train()
    log = tr.state.log_history[0]
    assert tr.state.global_step == 1 and 'kl' in log and 0 < log['completions/mean_length'] <= 6
    tr.save_model(str(tmp_path/'final'))
    m2, p2 = M.load_model(tmp_path/'final')
    assert M.is_image_processor(p2) and M.generate_answer(m2, p2, _image(), 'q', max_new_tokens=2) is not None


def test_trl_sft_step_lowers_loss_with_frozen_vision(tok, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    model, proc = M.build_tiny_model('tiny', tok)
    M.freeze_vision_tower(model)
    rows = [{**{k: r[k] for k in ('prompt', 'images')},
             'completion': [{'role': 'assistant', 'content': [{'type': 'text', 'text': f"<think>I count.</think><answer>{r['answer']}</answer>"}]}]}
            for r in _trl_rows(4)]
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=4, learning_rate=3e-3, logging_steps=1,
                     report_to='none', use_cpu=True, bf16=False, save_strategy='no', max_length=None, disable_tqdm=True)
    before = [p.clone() for p in M.vision_tower(model).parameters()]
    tr = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=proc)
    tr.train()
    losses = [h['loss'] for h in tr.state.log_history if 'loss' in h]
    assert losses[-1] < losses[0]
    assert all(torch.equal(a, b) for a, b in zip(before, M.vision_tower(model).parameters()))


# --- other Qwen-VL families, in the hub's file layout (preprocessor_config.json, no video processor) ---------------
def _family_checkpoint(family, tok, d):
    import transformers as T
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in [('image_token_id', '<|image_pad|>'), ('video_token_id', '<|video_pad|>'),
           ('vision_start_token_id', '<|vision_start|>'), ('vision_end_token_id', '<|vision_end|>')]}
    text = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                vocab_size=len(tok), max_position_embeddings=1024, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                rope_parameters=dict(rope_type='default', rope_theta=10000.0, mrope_section=[2, 3, 3]))
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, spatial_merge_size=2, temporal_patch_size=2)
    if family == 'qwen2_5_vl':
        cfg = T.Qwen2_5_VLConfig(text_config=text, vision_config=dict(vision, patch_size=14, window_size=56, fullatt_block_indexes=[1]), **ids)
        model, pcls, ip = T.Qwen2_5_VLForConditionalGeneration(cfg), 'Qwen2_5_VLProcessor', ('Qwen2VLImageProcessor', 14)
    else:
        text['head_dim'] = 16; text['rope_parameters']['mrope_interleaved'] = True
        cfg = T.Qwen3VLConfig(text_config=text, vision_config=dict(vision, patch_size=16, num_position_embeddings=64,
                                                                   deepstack_visual_indexes=[0]), **ids)
        model, pcls, ip = T.Qwen3VLForConditionalGeneration(cfg), 'Qwen3VLProcessor', ('Qwen2VLImageProcessorFast', 16)
    model.save_pretrained(d); tok.save_pretrained(d)
    (d/'preprocessor_config.json').write_text(json.dumps(dict(
        image_processor_type=ip[0], patch_size=ip[1], processor_class=pcls, merge_size=2, temporal_patch_size=2,
        min_pixels=56*56, max_pixels=224*224, image_mean=[0.5]*3, image_std=[0.5]*3)))
    return d


@pytest.mark.parametrize('family,cls', [('qwen2_5_vl', 'Qwen2_5_VLForConditionalGeneration'), ('qwen3_vl', 'Qwen3VLForConditionalGeneration')])
def test_load_other_qwen_vl_families(tok, tmp_path, family, cls):
    d = _family_checkpoint(family, tok, tmp_path/family)
    model, proc = M.load_model(d)
    assert type(model).__name__ == cls and M.is_image_processor(proc)
    text = proc.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'q'}]}],
                                    tokenize=False, add_generation_prompt=True)
    assert int((proc(text=[text], images=[_image()], return_tensors='pt')['input_ids'] == proc.image_token_id).sum()) == 16
    assert isinstance(M.generate_answer(model, proc, _image(), 'How many?', max_new_tokens=3), str)
    pm = M.apply_lora(model, r=2, alpha=4)
    assert not any('visual' in n for n, p in pm.named_parameters() if p.requires_grad)


def test_lora_adapter_directory_loads(tok, tmp_path):
    base, proc = M.get_tiny_model('tiny', tmp_path/'cache', tokenizer=tok)
    pm = M.apply_lora(base, r=4, alpha=8)
    for n, p in pm.named_parameters():
        if 'lora_B' in n: torch.nn.init.normal_(p, std=0.5)   # make the adapter change the outputs
    ad = M.save_model(pm, proc, tmp_path/'adapter')
    assert not (ad/'config.json').exists()
    attached, p2 = M.load_model(ad)
    merged, _ = M.load_model(ad, merge_lora=True)
    plain, _ = M.load_model(json.loads((ad/'adapter_config.json').read_text())['base_model_name_or_path'])
    text = proc.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'q'}]}],
                                    tokenize=False, add_generation_prompt=True)
    enc = p2(text=[text], images=[_image()], return_tensors='pt')
    with torch.no_grad(): la, lm, lp, lt = (m(**enc).logits for m in (attached, merged, plain, pm.eval()))
    assert torch.allclose(la, lt, atol=1e-5) and torch.allclose(lm, lt, atol=1e-4)
    assert not torch.allclose(lp, lt, atol=1e-3)
    assert type(merged).__name__ == 'Qwen2VLForConditionalGeneration'


def test_processor_pickles_by_name(built):
    "Data-loader workers and datasets.map(num_proc>1) pickle the processor: the dynamic class must be findable."
    import pickle
    q = pickle.loads(pickle.dumps(built[1]))
    assert type(q) is type(built[1]) and q.image_processor.size == built[1].image_processor.size
    assert M.ImageOnlyQwen2_5_VLProcessor.__name__ == 'ImageOnlyQwen2_5_VLProcessor'
    with pytest.raises(AttributeError): M.ImageOnlyNoSuchProcessor


def test_pixel_overrides_on_the_autoprocessor_path(saved, built, monkeypatch):
    "On a torchvision box AutoProcessor succeeds; min/max_pixels must still apply."
    import copy, transformers
    full = copy.deepcopy(built[1])
    monkeypatch.setattr(transformers.AutoProcessor, 'from_pretrained', lambda *a, **k: full)
    p = M.load_processor(saved, max_pixels=112*112)
    text = p.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}]}], tokenize=False)
    assert int((p(text=[text], images=[_image(224)], return_tensors='pt')['input_ids'][0] == p.image_token_id).sum()) == 16
