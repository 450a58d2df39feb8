"""How closely `vr1_nb.scoring`'s official MATH-V mode reproduces latex2sympy2 1.9.1, string by string (a measurement, not a test).

MATH-V's published counts were computed with latex2sympy2 1.9.1 (ANTLR 4.7.2), which cannot be installed beside math-verify.
The official mode reproduces that parser by rule (see nbs/03a_scoring.ipynb). This script installs nothing: give it a Python
of a throwaway environment that has the old library, e.g.

    python -m venv /tmp/l2s191 && /tmp/l2s191/bin/pip install latex2sympy2==1.9.1
    .venv/bin/python bench/mathv_l2s191_parity.py --old-python /tmp/l2s191/bin/python [--lines] [--show 20]

The old interpreter only parses (`str(latex2sympy(s))`, 5 s per string); the printed forms come back here and are evaluated
by `py_value`, the eval-free stand-in for upstream's `eval(str(...))`, so nothing evaluates model output. Strings (lower-cased,
as upstream's `is_equal` does): every gold answer and option text of MATH-V's test.jsonl and the answers `mathv_extract`
finds in the shared MATH-V outputs, MathVista's responses and math-verify's cases; with `--lines`, also `mathv_extract` of
every line of those responses and of every MATH-V question (12,000 at most, a different sample of answer-like text).
"""
import argparse, json, random, subprocess, sys, tempfile, time
from collections import Counter
from pathlib import Path

OLD_SIDE = r'''
import json, signal, sys
from latex2sympy2 import latex2sympy
class Late(Exception): pass
def late(*a): raise Late()
signal.signal(signal.SIGALRM, late)
out = {}
for s in json.load(open(sys.argv[1])):
    signal.alarm(5)
    try: out[s] = str(latex2sympy(s))
    except Exception: out[s] = None
    finally: signal.alarm(0)
json.dump(out, open(sys.argv[2], 'w'))
'''


def corpus(shared:Path, lines:bool, limit:int=12000) -> list:
    from vr1_nb.scoring import mathv_extract
    base, extra = set(), set()
    for l in (shared/'mathvision'/'test.jsonl').read_text().splitlines():
        r = json.loads(l); base |= {str(r['answer']).lower(), *(o.lower() for o in r['options'])}
        if lines: extra |= {mathv_extract(q) for q in [r['question'], *r['question'].split('\n')]}
    texts = [json.loads(l)['response'] for f in (shared/'mathvision'/'outputs').glob('*.jsonl') for l in f.read_text().splitlines() if l.strip()]
    for f in (shared/'mathvista'/'results').glob('output_*.json'):
        texts += [v['response'] for v in json.loads(f.read_text()).values() if isinstance(v.get('response'), str)]
    cases = [json.loads(l) for l in (shared/'answers'/'math_verify_cases.jsonl').read_text().splitlines() if l.strip()]
    texts += [c[k] for c in cases for k in ('gold', 'pred') if isinstance(c.get(k), str)]
    base |= {mathv_extract(t) for t in texts}
    if lines:
        extra |= {mathv_extract(x) for t in texts for x in t.split('\n') if x.strip()}
        extra = sorted(x for x in extra - base if x and len(x) < 400)
        random.Random(0).shuffle(extra)
        return sorted(base) + extra[:limit]
    return sorted(base)


def old_printed(old_python:str, strings:list) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src, inp, out = Path(d)/'old_side.py', Path(d)/'in.json', Path(d)/'out.json'
        src.write_text(OLD_SIDE); inp.write_text(json.dumps(strings))
        subprocess.run([old_python, str(src), str(inp), str(out)], check=True, stderr=subprocess.DEVNULL)
        return json.loads(out.read_text())


def old_value(printed):
    "round(eval(printed), 2) as upstream computes it, without eval; None where upstream raises."
    from vr1_nb.scoring import py_value
    if printed is None: return None
    try: v = round(py_value(printed), 2)
    except Exception: return None
    return v if isinstance(v, (int, float)) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--old-python', required=True, help='python of an environment with latex2sympy2==1.9.1')
    ap.add_argument('--shared', default=str(Path(__file__).resolve().parents[2]/'shared'/'benchmarks'))
    ap.add_argument('--lines', action='store_true', help='add up to 12,000 strings from response lines and questions')
    ap.add_argument('--show', type=int, default=20)
    a = ap.parse_args()
    from vr1_nb.scoring import _r2
    strings = [s for s in corpus(Path(a.shared), a.lines) if s]
    t0 = time.time(); printed = old_printed(a.old_python, strings); t_old = time.time() - t0
    t0 = time.time(); diffs, kinds = [], Counter()
    for s in strings:
        o, ours = old_value(printed.get(s)), _r2(s)
        if o != ours:
            kinds[('1.9.1 ok' if o is not None else '1.9.1 fails') + (', ours ok' if ours is not None else ', ours fails')] += 1
            diffs.append((s, printed.get(s), o, ours))
    print(f"{len(strings)} strings; {len(diffs)} differ {dict(kinds)}; 1.9.1 parse {t_old:.0f}s, ours {time.time() - t0:.0f}s")
    for s, p, o, ours in diffs[:a.show]: print(f"  {s[:90]!r}: 1.9.1 {p!r} -> {o}, ours {ours}")


if __name__ == '__main__': sys.exit(main())
