"""Sampled requests on the HF backend: one at a time (the old way: `torch.manual_seed` + transformers' own sampling, one
request per `generate`) against `HFBackend`'s batches (Gumbel-max with a generator per row), on the tiny offline model.
Not a test: run it by hand and copy the numbers into nbs/06_generate.ipynb.

    OMP_NUM_THREADS=1 .venv/bin/python bench/hf_sampled_batching.py [--n 32] [--max-tokens 32] [--batch 1 8 32] [--repeat 3]
"""
import argparse, os, platform, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=32, help='sampled requests (distinct prompts, one completion each)')
    ap.add_argument('--max-tokens', type=int, default=32)
    ap.add_argument('--batch', type=int, nargs='+', default=[1, 8, 32], help='HFBackend batch sizes (rows per forward batch)')
    ap.add_argument('--repeat', type=int, default=3, help='runs per setting; the best is reported')
    a = ap.parse_args()
    import torch
    from PIL import Image
    from vr1_nb.models import get_tiny_model
    from vr1_nb.generate import HFBackend, Request, to_hf_messages
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    model, proc = get_tiny_model()
    colours, words = ['red', 'blue', 'green', 'yellow'], ['How many circles?', 'What is the area of the rectangle?', 'Which bar is highest?', 'Hi']
    reqs = [Request(f'r{i}', 'bench', 'tiny', [{'role': 'user', 'content': [{'type': 'image', 'image': Image.new('RGB', (56, 56), colours[i % 4])},
            {'type': 'text', 'text': words[i % 4] + ' ' * (i % 5)}]}], params=dict(temperature=1.0, max_tokens=a.max_tokens)) for i in range(a.n)]
    be = HFBackend(model, proc, max_tokens=a.max_tokens)
    def old_way():   # what HFBackend did before: each sampled request alone under its own torch seed
        for r in reqs:
            torch.manual_seed(r.seed)
            enc = be._encode([to_hf_messages(r.messages)])
            with torch.no_grad(): model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=a.max_tokens, pad_token_id=0)
    def best(fn):
        ts = []
        for _ in range(a.repeat): t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
        return min(ts)
    print(f"# {a.n} sampled requests x {a.max_tokens} new tokens, tiny model, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{platform.processor() or platform.machine()}; best of {a.repeat}")
    base = best(old_way)
    print(f"one at a time (transformers sampling, manual_seed): {base:.2f} s")
    for bs in a.batch:
        be.batch_size = bs
        t = best(lambda: be.generate(reqs))
        print(f"HFBackend batch_size={bs:3d}: {t:.2f} s  ({base / t:.1f}x)")

if __name__ == '__main__': main()
