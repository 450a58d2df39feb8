#!/usr/bin/env python
"""README.md from nbs/index.ipynb without Quarto (`nbdev-readme` needs Quarto, which cannot be installed here).

Markdown cells are copied; code cells become ```python blocks (their `#|` directives removed); cells flagged
`#| hide` are skipped; stored text outputs (if any) follow their cell. `--check` exits 1 when README.md is stale.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        lines = src.splitlines()
        flags = {l[3:].strip() for l in lines if l.startswith('#| ')}
        if 'hide' in flags: continue
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if not body: continue
        if c['cell_type'] == 'markdown': parts.append(body)
        elif c['cell_type'] == 'code':
            parts.append(f"```python\n{body}\n```")
            for o in c.get('outputs', []):
                txt = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', ''))
                if txt.strip(): parts.append(f"```\n{txt.rstrip()}\n```")
    return '<!-- generated from nbs/index.ipynb by tools/make_readme.py (make readme); edit the notebook -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    out = render()
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != out:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `make readme`")
    else: readme.write_text(out); print(f"wrote {readme}")
