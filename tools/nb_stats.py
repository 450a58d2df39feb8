"""Per-notebook code-shape table (issue 18): mean non-blank lines per code cell (`#|` directives excluded),
longest cell, share of code lines over 120 characters, code cells with stored outputs, cells ending in a bare expression.
Usage: python tools/nb_stats.py [nbs]"""
import ast, json, sys
from pathlib import Path

def cell_lines(src): return [l for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|')]

def ends_in_value(src):
    try: body = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('#|', '%', '!')))).body
    except SyntaxError: return False
    return bool(body) and isinstance(body[-1], ast.Expr) and not (isinstance(body[-1].value, ast.Call)
        and getattr(body[-1].value.func, 'id', getattr(body[-1].value.func, 'attr', '')) in ('print', 'test_eq', 'test_fail', 'test_close', 'test_ne'))

def stats(path):
    cells = [c for c in json.loads(Path(path).read_text())['cells'] if c['cell_type'] == 'code']
    srcs = [''.join(c['source']) for c in cells]
    lines = [cell_lines(s) for s in srcs]
    flat = [l for ls in lines for l in ls]
    n = max(len(cells), 1)
    return dict(notebook=Path(path).name, cells=len(cells), mean=sum(map(len, lines)) / n, longest=max(map(len, lines), default=0),
                over120=sum(len(l) > 120 for l in flat) / max(len(flat), 1), outputs=sum(bool(c.get('outputs')) for c in cells),
                shows=sum(map(ends_in_value, srcs)))

if __name__ == '__main__':
    root = Path(sys.argv[1] if len(sys.argv) > 1 else 'nbs')
    rows = [stats(p) for p in sorted(root.rglob('*.ipynb')) if '.ipynb_checkpoints' not in str(p)]
    print('| notebook | code cells | mean lines | longest | lines >120 | with outputs | end in a value |\n|---|---|---|---|---|---|---|')
    for r in rows: print(f"| {r['notebook']} | {r['cells']} | {r['mean']:.1f} | {r['longest']} | {r['over120']:.0%} | {r['outputs']} | {r['shows']} |")
    c = sum(r['cells'] for r in rows)
    print(f"| all | {c} | {sum(r['mean']*r['cells'] for r in rows)/c:.1f} | {max(r['longest'] for r in rows)} | "
          f"{sum(r['over120']*r['cells'] for r in rows)/c:.0%} | {sum(r['outputs'] for r in rows)} | {sum(r['shows'] for r in rows)} |")
