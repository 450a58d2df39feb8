"""Throughput of answer verification: ours sequential (1 worker), ours parallel (the pool), and TRL's built-in
`trl.rewards.accuracy_reward`, on the same ~10,000 completions built from the shared third-party records, plus a slice
of pathological inputs. Not a test: run it by hand and copy the numbers into nbs/03_answers.ipynb.

    OMP_NUM_THREADS=1 .venv/bin/python bench/verify_throughput.py [--n 10000] [--json out.json]
"""
import argparse, json, logging, os, platform, random, sys, time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / 'shared' / 'benchmarks'


def items_from_shared(n, seed=0):
    "(completion text, gold) pairs: real model answers from MATH-V/MathVista outputs and rewritten golds (same value, other form, wrong)."
    from vr1_nb.benchmarks import load_mathvision, load_mathvista, load_mathverse, read_predictions
    from vr1_nb.scoring import mathv_extract
    from vr1_nb.answers import parse_number
    golds, real = [], []
    mv = {r['id']: r for r in load_mathvision(BENCH / 'mathvision' / 'test.jsonl')}
    for m in ('LLaVA-v1.5-7B', 'Gemini-Pro-CoT'):
        for p in read_predictions(BENCH / 'mathvision' / 'outputs' / f'{m}.jsonl'):
            r = mv[p['id']]
            if not r['choices']: real.append((mathv_extract(p['response']), r['answer']))
    golds += [r['answer'] for r in mv.values() if not r['choices']]
    vista = {r['id']: r for r in load_mathvista(BENCH / 'mathvista' / 'testmini.json')}
    for f in ('llava_llama_2_13b', 'frequent_guess'):
        for p in read_predictions(BENCH / 'mathvista' / 'results' / f'output_{f}.json'):
            r = vista[p['id']]
            if not r['choices'] and p.get('extraction'): real.append((str(p['extraction']), r['answer']))
    golds += [r['answer'] for r in vista.values() if not r['choices']]
    golds += [r['answer'] for r in load_mathverse(BENCH / 'mathverse' / 'testmini_text_only.json') if not r['choices']]
    rng = random.Random(seed)
    variants = []
    for g in golds:
        v = parse_number(g)
        variants.append((g, g))
        if v is not None:
            variants.append((f'\\frac{{{int(v * 4) if float(v * 4).is_integer() else v * 4}}}{{4}}', g))
            variants.append((str(v + 1), g))
        else:
            variants.append((f'{g} + 1', g))
    pool = real + variants
    rng.shuffle(pool)
    items = (pool * (n // len(pool) + 1))[:n]
    return [(f'<think>Let me work it out.</think><answer>\\boxed{{{a}}}</answer>', g) for a, g in items]


PATHOLOGICAL = [
    ('<think>' + 'x' * 200_000 + '</think><answer>\\boxed{4}</answer>', '4'),               # 200 KB completion, easy answer
    ('<think>.</think><answer>' + '7' * 100_000 + '</answer>', '4'),                      # 100 KB answer
    ('<think>.</think><answer>\\boxed{' + '\\frac{1}{' * 300 + '2' + '}' * 300 + '}</answer>', '4'),   # deeply nested LaTeX
    ('<think>.</think><answer>\\boxed{' + '\\sqrt{' * 300 + '4' + '}' * 300 + '}</answer>', '4'),
    ('<think>.</think><answer>\\boxed{9^{9^{9^{9}}}}</answer>', '4'),                    # towers of exponents
    ('<think>.</think><answer>\\boxed{10^{10^{10}}}</answer>', '4'),
    ('<think>.</think><answer>\\boxed{2^{2^{2^{2^{2^{2}}}}}}</answer>', '4'),
    ('<think>.</think><answer>\\boxed{' + '(' * 1000 + '4' + ')' * 1000 + '}</answer>', '4'),
]


def run_ours(texts, golds, workers, timeout):
    from vr1_nb.answers import SafePool, verify_completions, VERIFY_STATS
    pool = SafePool(workers=workers, timeout=timeout)
    pool.map('vr1_nb.answers:parse_number', [('1',)] * workers)      # start the workers outside the timing
    t0 = time.perf_counter()
    res = verify_completions(texts, golds, tagged_only=True, pool=pool, timeout=timeout)
    dt = time.perf_counter() - t0
    st = dict(pool.stats); pool.close()
    return [bool(r) for r in res], dt, st, dict(VERIFY_STATS)


def run_trl(texts, golds):
    from trl.rewards import accuracy_reward
    logging.getLogger('math_verify').setLevel(logging.CRITICAL)
    out, worst, t0 = [], (0.0, None), time.perf_counter()
    for i, (t, g) in enumerate(zip(texts, golds)):
        s = time.perf_counter()
        try: r = accuracy_reward([[{'role': 'assistant', 'content': t}]], [f'${g}$'])[0]
        except Exception as e: r = f'error: {type(e).__name__}'
        d = time.perf_counter() - s
        if d > worst[0]: worst = (d, i)
        out.append(r)
    return out, time.perf_counter() - t0, worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=10_000)
    ap.add_argument('--timeout', type=float, default=5.0)
    ap.add_argument('--json', default=None)
    ap.add_argument('--skip-trl', action='store_true')
    a = ap.parse_args()
    items = items_from_shared(a.n) + PATHOLOGICAL
    texts, golds = [t for t, _ in items], [g for _, g in items]
    n_path = len(PATHOLOGICAL)
    report = dict(machine=f'{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), load avg {os.getloadavg()[0]:.1f} at start',
                  python=sys.version.split()[0], items=len(items), pathological=n_path)
    seq, t_seq, st_seq, vs = run_ours(texts, golds, 1, a.timeout)
    par, t_par, st_par, _ = run_ours(texts, golds, 2, a.timeout)
    report['ours_sequential'] = dict(seconds=round(t_seq, 1), items_per_s=round(len(items) / t_seq, 1), worst_item_s=round(st_seq['max_seconds'], 2),
                                     timeouts=st_seq['timeouts'], settled_without_sympy=vs['fast'], correct=sum(seq))
    report['ours_parallel_2'] = dict(seconds=round(t_par, 1), items_per_s=round(len(items) / t_par, 1), worst_item_s=round(st_par['max_seconds'], 2),
                                     timeouts=st_par['timeouts'], correct=sum(par))
    report['agreement_seq_vs_par'] = round(sum(x == y for x, y in zip(seq, par)) / len(items), 4)
    if not a.skip_trl:
        trl, t_trl, worst = run_trl(texts, golds)
        agree = [i for i in range(len(items)) if trl[i] is not None and not isinstance(trl[i], str)]
        dis = [i for i in agree if bool(trl[i]) != par[i]]
        report['trl_accuracy_reward'] = dict(seconds=round(t_trl, 1), items_per_s=round(len(items) / t_trl, 1), worst_item_s=round(worst[0], 2),
                                             worst_item=texts[worst[1]][:80] if worst[1] is not None else None,
                                             skipped_gold_unparsed=sum(r is None for r in trl), errors=sum(isinstance(r, str) for r in trl),
                                             correct=sum(1 for r in trl if r == 1.0))
        report['agreement_ours_vs_trl'] = dict(compared=len(agree), agree=round(1 - len(dis) / max(len(agree), 1), 4),
                                               ours_only=sum(par[i] for i in dis), trl_only=sum(not par[i] for i in dis),
                                               examples=[dict(answer=texts[i].split('\\boxed{', 1)[-1][:-len('}</answer>')][:80], gold=golds[i], ours=par[i], trl=trl[i]) for i in dis[:12]])
    print(json.dumps(report, indent=1))
    if a.json: Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == '__main__':
    main()
