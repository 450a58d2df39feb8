"Test-wide settings: one torch thread per process and no hub access (see vr1_nb.core.set_threads)."
import os
for k, v in dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', VR1_THREADS='1', HF_HUB_OFFLINE='1', HF_DATASETS_OFFLINE='1',
                 TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false').items():
    os.environ.setdefault(k, v)
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent/'shared'
BENCH = SHARED/'benchmarks'

def pytest_configure(config):
    try:
        import torch; torch.set_num_threads(1)
    except ImportError: pass

def pytest_collection_modifyitems(config, items):
    "Skip tests marked `gpu` where no CUDA device exists (stated in the skip reason, never silent)."
    try:
        import torch; has_gpu = torch.cuda.is_available()
    except ImportError: has_gpu = False
    if has_gpu: return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for it in items:
        if 'gpu' in it.keywords: it.add_marker(skip)

@pytest.fixture
def shared_benchmarks():
    if not BENCH.exists(): pytest.fail(f"shared benchmark records not found at {BENCH} (CI keeps shared/ beside the checkout)")
    return BENCH
