"""The processor path GPU users have: transformers' `AutoProcessor` with torchvision (fast image processors).

The project's environment has no torchvision (PyPI's build does not import beside the CPU torch 2.13), so there
`models.load_processor` rebuilds an image-only processor from the checkpoint's files. These tests check that the two
paths are the same processor for training purposes. They skip without torchvision; `make test-torchvision` runs them
in a second environment (`.venv-tv`: torch 2.14.1 + torchvision 0.29.1, a CUDA build that runs on CPU).
"""
import os
import pytest

torchvision = pytest.importorskip('torchvision')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch
from PIL import Image, ImageDraw
from vr1_nb import models as M

torch.set_num_threads(1)

@pytest.fixture(scope='module', params=['qwen2_vl', 'qwen2_5_vl'])
def ckpt(request, tmp_path_factory):
    return M.tiny_checkpoint(request.param, cache_dir=tmp_path_factory.mktemp('ckpt'))

def _image(w=300, h=200):
    im = Image.new('RGB', (w, h), 'white'); d = ImageDraw.Draw(im)
    d.ellipse((10, 10, 80, 80), fill='red'); d.rectangle((120, 60, 260, 180), fill='blue')
    return im

def _inputs(p, im):
    text = p.apply_chat_template([{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'How many?'}]}],
                                 tokenize=False, add_generation_prompt=True)
    return p(text=[text], images=[im], return_tensors='pt')

def test_load_processor_returns_autoprocessors_processor(ckpt):
    p = M.load_processor(ckpt)
    assert type(p).__name__ in ('Qwen2VLProcessor', 'Qwen2_5_VLProcessor'), type(p).__name__
    # transformers 5: `Qwen2VLImageProcessor` is the torchvision backend, `image_processing_pil_*` the PIL one we fall back to
    mod = type(p.image_processor).__module__
    assert '_pil_' not in mod, f"AutoProcessor gave the PIL image processor ({mod}), not the torchvision one"
    assert type(p.image_processor) is not type(M._image_only_from_dir(ckpt).image_processor)

@pytest.mark.parametrize('max_pixels', [None, 112 * 112])
def test_fast_and_fallback_processors_agree(ckpt, max_pixels, monkeypatch):
    px = {} if max_pixels is None else {'max_pixels': max_pixels}
    fast = M.load_processor(ckpt, **px)
    fallback = M._image_only_from_dir(ckpt, **px)
    im = _image()
    a, b = _inputs(fast, im), _inputs(fallback, im)
    assert a['input_ids'].tolist() == b['input_ids'].tolist()          # the same prompt, image tokens included
    assert a['image_grid_thw'].tolist() == b['image_grid_thw'].tolist()
    # resizing in torchvision vs PIL differs by interpolation details: close, not equal
    assert a['pixel_values'].shape == b['pixel_values'].shape
    assert torch.nn.functional.cosine_similarity(a['pixel_values'].flatten().float(), b['pixel_values'].flatten().float(), dim=0) > 0.99

def test_model_forward_with_the_fast_processor(ckpt):
    model, p = M.load_model(ckpt, dtype=torch.float32)
    out = model(**_inputs(p, _image()))
    assert torch.isfinite(out.logits).all()
