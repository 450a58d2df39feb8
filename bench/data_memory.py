"""Peak memory of building a training dataset from N records with one 1-megapixel PNG each (issue 15, item 2).

    OMP_NUM_THREADS=1 python bench/data_memory.py [--sizes 500 5000] [--workdir /tmp/vr1-data-memory] [--previous]

Each (method, size) runs in its own subprocess, so its peak RSS (`ru_maxrss`) is its own. The reported growth is the
peak RSS while building minus the peak RSS just before (after every import and after the records file exists), i.e.
what building adds:
  ours      vr1_nb.sft.sft_dataset(<jsonl>, max_pixels=262144): records streamed from the JSONL into a memory-mapped Arrow
            file with the image *paths* (data.training_dataset), the pixel cap as a lazy transform; nothing decoded.
  previous  (--previous) what core.to_dataset did before: every image's bytes read into an in-memory `Dataset.from_dict`
            table (kept here, inline, as the baseline; the library no longer has it).
The images: 1000x1000 RGB PNGs of upscaled noise (~148 KB each, so N=5,000 is ~0.74 GB of PNG bytes and 15 GB of
pixels decoded); 20 distinct images hard-linked under N distinct paths (every record reads its own path).

Measured on the shared 2-core CI box (other jobs running; datasets 5.2, 1 thread), `--previous`:
  ours      n=500: peak 443.1 MiB, growth 7.5 MiB;   n=5000: peak 444.4 MiB, growth 8.8 MiB   (+1.3 MiB for 4,500 more records)
  previous  n=500: peak 893.6 MiB, growth 458 MiB;   n=5000: peak 4757.6 MiB, growth 4314 MiB (716 MiB of PNG bytes)
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

MiB = 2**20

def make_data(work:Path, n:int, distinct:int=20) -> Path:
    "N records (one 1-MP PNG each, hard-linked from `distinct` originals) in our JSONL schema, with an SFT target."
    from PIL import Image
    src = work/'distinct'; src.mkdir(parents=True, exist_ok=True)
    for i in range(distinct):
        p = src/f'{i}.png'
        if not p.exists(): Image.effect_noise((250, 250), 40 + i).convert('RGB').resize((1000, 1000), Image.NEAREST).save(p)
    imgs = work/f'images-{n}'; imgs.mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        p = imgs/f'{i:06d}.png'
        if not p.exists():
            try: os.link(src/f'{i % distinct}.png', p)
            except OSError: p.write_bytes((src/f'{i % distinct}.png').read_bytes())
        lines.append(json.dumps({'id': f'r{i:06d}', 'images': [str(p)], 'question': f'How many dots are in image {i}?', 'answer': str(i % 7),
                                 'response': f'<think>I count them.</think><answer>{i % 7}</answer>'}))
    f = work/f'records-{n}.jsonl'; f.write_text('\n'.join(lines) + '\n')
    return f

def _rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB

def child(method:str, path:str, cache:str):
    "One measurement: import everything, note the peak, build, note the peak again."
    os.environ['VR1_DATA_CACHE'] = cache
    import datasets
    from vr1_nb.core import load_jsonl, record_features
    from vr1_nb.sft import sft_dataset
    recs = load_jsonl(path) if method == 'previous' else None
    before, t0 = _rss(), time.perf_counter()
    if method == 'ours': ds = sft_dataset(path, max_pixels=262144)
    else:
        rows = [{**r, 'images': [{'path': p, 'bytes': Path(p).read_bytes()} for p in r['images']], 'metadata': '{}', 'choices': []} for r in recs]
        cols = {k: [r.get(k) for r in rows] for k in ('id', 'images', 'question', 'choices', 'answer', 'answer_text', 'answer_type', 'source', 'metadata', 'response')}
        ds = datasets.Dataset.from_dict(cols).cast(record_features({'response': None}))
    secs = time.perf_counter() - t0
    print(json.dumps(dict(method=method, n=len(ds), before_mib=before / MiB, peak_mib=_rss() / MiB, growth_mib=(_rss() - before) / MiB, seconds=secs)))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', type=int, nargs='+', default=[500, 5000])
    ap.add_argument('--workdir', default='/tmp/vr1-data-memory')
    ap.add_argument('--previous', action='store_true', help="also measure the previous in-memory build (holds every PNG's bytes)")
    ap.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(*a.child)
    work = Path(a.workdir); work.mkdir(parents=True, exist_ok=True)
    res = []
    for n in a.sizes:
        f = make_data(work, n)
        png = sum((work/'distinct'/f'{i % 20}.png').stat().st_size for i in range(n))
        for method in (['ours', 'previous'] if a.previous else ['ours']):
            cache = work/f'cache-{method}-{n}-{time.time_ns()}'
            out = subprocess.run([sys.executable, __file__, '--child', method, str(f), str(cache)], capture_output=True, text=True,
                                 env={**os.environ, 'OMP_NUM_THREADS': '1', 'HF_DATASETS_OFFLINE': '1', 'HF_HUB_OFFLINE': '1'})
            if out.returncode: sys.exit(out.stderr[-3000:])
            r = json.loads(out.stdout.strip().splitlines()[-1]); r.update(png_mib=png / MiB, decoded_gib=n * 3e6 / 2**30); res.append(r)
            print(f"{method:8s} n={n:5d}: peak RSS {r['peak_mib']:7.1f} MiB, growth while building {r['growth_mib']:7.1f} MiB, "
                  f"{r['seconds']:6.1f} s  (PNG bytes {r['png_mib']:.0f} MiB; decoded pixels {r['decoded_gib']:.1f} GiB)", flush=True)
    ours = {r['n']: r for r in res if r['method'] == 'ours'}
    if len(ours) >= 2:
        lo, hi = min(ours), max(ours)
        print(f"ours: peak RSS {ours[lo]['peak_mib']:.1f} MiB at {lo}, {ours[hi]['peak_mib']:.1f} MiB at {hi}: "
              f"{ours[hi]['peak_mib'] - ours[lo]['peak_mib']:+.1f} MiB for {hi - lo} more records (target < 100 MiB)")
    print(json.dumps(res))

if __name__ == '__main__': main()
