"A 2-round OpenVLThinker iteration on the tiny model, with the medium->hard curriculum, and its resume."
import json, os
from pathlib import Path
import pytest

@pytest.fixture(scope='module')
def iterated(tmp_path_factory):
    from vr1_nb import synth
    from vr1_nb.core import load_config
    from vr1_nb.models import get_tiny_model, save_model
    from vr1_nb.iterate import iterate_run
    out = tmp_path_factory.mktemp('iterate')
    tr, te = synth.make_splits(16, 6)
    m, p = get_tiny_model('tiny'); base = save_model(m, p, out/'base')
    cfg = load_config('smoke')
    cfg['model']['path'] = str(base)
    cfg['stages'] = [{'name': 'ptst-1', 'max_completion_length': 12, 'num_generations': 4, 'max_steps': 1}]
    cfg['iterate'] = dict(rounds=2, sft_set=[dict(r, response=synth.r1_response(r)) for r in tr[:8]], rl=tr[8:], test=te,
                          samples=2, max_new_tokens=12, medium_max=0.5)
    return cfg, out/'run', iterate_run(cfg, out/'run')

def test_two_rounds_logged(iterated):
    cfg, run, summ = iterated
    rows = [json.loads(l) for l in (run/'rounds.jsonl').read_text().splitlines()]
    assert [r['round'] for r in rows] == [1, 2] and summ['rounds'] == rows
    for r in rows:
        assert 0 <= r['acc_sft'] <= 1 and 0 <= r['acc_grpo'] <= 1 and r['rs_problems'] == 8
        assert (run/f"round{r['round']}"/'next_sft.jsonl').exists()
        assert (run/f"round{r['round']}"/'eval-grpo'/'predictions.jsonl').exists()

def test_v3_sft_restarts_from_base(iterated):
    cfg, run, summ = iterated
    assert all(r['sft_start'] == cfg['model']['path'] for r in summ['rounds'])

def test_curriculum_from_base_error_rates(iterated):
    from vr1_nb.iterate import error_rates, curriculum
    cfg, run, summ = iterated
    rates = json.loads((run/'difficulty'/'error_rates.json').read_text())
    assert rates == error_rates(run/'difficulty') and set(rates) <= {'synth/counting', 'synth/geometry', 'synth/chart'}
    phases = [p['phase'] for p in summ['rounds'][0]['phases']]
    cur = curriculum(cfg['iterate']['rl'], rates, medium_max=0.5)
    assert phases == [f'grpo-{k}' for k in ('medium', 'hard') if cur[k]]   # medium before hard, empty phases skipped
    assert sum(p['n'] for p in summ['rounds'][0]['phases']) == 8

def test_resume_reuses_finished_run(iterated, monkeypatch):
    from vr1_nb import iterate
    cfg, run, summ = iterated
    files = lambda: {p: p.stat().st_mtime_ns for p in run.rglob('*') if p.is_file()}
    before = files()
    def no_work(*a, **k): raise AssertionError('resuming a finished run trained or evaluated again')
    for name in ('run_step', 'grpo_phases', 'eval_model'): monkeypatch.setattr(iterate, name, no_work)
    assert iterate.iterate_run(cfg, run, resume=True) == summ
    assert files() == before                                    # nothing written, nothing removed

def test_bad_settings_are_named():
    from vr1_nb.iterate import iterate_settings
    with pytest.raises(ValueError, match='roundz'): iterate_settings({'iterate': {'roundz': 2}})

# The files a rank other than 0 writes under `root`: an audit hook for Python-level opens, renames, replaces and removes,
# plus a wrapper around `torch.save` (it writes through C++, which no audit event sees), installed in every Python process
# of a launch through sitecustomize on PYTHONPATH; the list goes outside `root`. Directory creation is not counted: the
# Trainer's ranks all `makedirs(exist_ok=True)` the checkpoint directory rank 0 fills.
AUDIT = '''
import os, sys, json, atexit, importlib.util
root, out, rank = os.environ.get('VR1_AUDIT_ROOT'), os.environ.get('VR1_AUDIT_OUT'), os.environ.get('RANK', '0')
if root and rank != '0':
    writes = []
    under = lambda p: os.path.abspath(os.fsdecode(p)).startswith(root)
    def hook(event, args):
        if event == 'open' and isinstance(args[0], (str, bytes)) and under(args[0]):
            mode, flags = args[1], args[2]
            if any(c in mode for c in 'wax+') if isinstance(mode, str) else flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                writes.append(os.fsdecode(args[0]))
        elif event in ('os.rename', 'os.replace', 'os.remove') and isinstance(args[0], (str, bytes)) and under(args[0]):
            writes.append(f"{event} {os.fsdecode(args[0])}")
    sys.addaudithook(hook)
    class TorchSave:
        "Wrap torch.save when torch is imported (a find_spec that imports nothing, e.g. transformers' check, is passed over)."
        def find_spec(self, name, path=None, target=None):
            if name != 'torch': return None
            sys.meta_path.remove(self)
            try: spec = importlib.util.find_spec('torch')
            finally: sys.meta_path.insert(0, self)
            run = spec.loader.exec_module
            def exec_module(m):
                run(m); save = m.save
                def logged(obj, f, *a, **k):
                    if isinstance(f, (str, os.PathLike)) and under(f): writes.append(os.fspath(f))
                    return save(obj, f, *a, **k)
                m.save = logged
                if self in sys.meta_path: sys.meta_path.remove(self)
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, TorchSave())
    atexit.register(lambda: open(os.path.join(out, f"rank{rank}-{os.getpid()}.json"), 'w').write(json.dumps(writes)))
'''

def _unique_rows(path, key):
    rows = [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    keys = [key(r) for r in rows]
    return len(keys) == len(set(keys))

def test_two_process_round_and_eval(tmp_path, monkeypatch):
    "One smoke round with each training step an `accelerate launch` of 2 CPU processes, then `vr1 eval` on 2 processes."
    import subprocess, sys
    from vr1_nb import synth
    from vr1_nb.core import load_config, save_jsonl
    from vr1_nb.models import get_tiny_model, save_model
    from vr1_nb.iterate import iterate_run
    site, audit, root = tmp_path/'site', tmp_path/'audit', tmp_path/'runs'
    for d in (site, audit, root): d.mkdir()
    (site/'sitecustomize.py').write_text(AUDIT)
    monkeypatch.setenv('PYTHONPATH', f"{site}:{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv('VR1_AUDIT_ROOT', str(root)); monkeypatch.setenv('VR1_AUDIT_OUT', str(audit))
    tr, te = synth.make_splits(16, 6)
    m, p = get_tiny_model('tiny'); base = save_model(m, p, tmp_path/'base')
    cfg = load_config('smoke'); cfg['model']['path'] = str(base)
    cfg['stages'] = [{'name': 'ptst-1', 'max_completion_length': 12, 'num_generations': 4, 'max_steps': 1}]
    cfg['iterate'] = dict(rounds=1, sft_set=[dict(r, response=synth.r1_response(r)) for r in tr[:8]], rl=tr[8:], test=te,
                          samples=2, max_new_tokens=12, medium_max=0.5, launch={'num_processes': 2, 'args': ['--multi_gpu']})
    summ = iterate_run(cfg, root/'iterate')
    assert [r['round'] for r in summ['rounds']] == [1]
    steps = [root/'iterate'/'round1'/'sft'] + [Path(p['dir']) for p in summ['rounds'][0]['phases']]
    for d in steps:
        done = json.loads((d/'COMPLETE').read_text())
        assert done['processes'] == 2, (d, done)                         # one distributed job of world size 2
        assert 'resumed' not in json.loads((d/'manifest.json').read_text())   # one manifest, written once
        if (d/'log.jsonl').exists(): assert _unique_rows(d/'log.jsonl', lambda r: (r.get('step'), tuple(sorted(r))))
    assert _unique_rows(root/'iterate'/'rounds.jsonl', lambda r: r['round'])
    assert _unique_rows(root/'iterate'/'round1'/'rejection_store.jsonl', lambda r: r['key'])
    test_file = tmp_path/'test.jsonl'; save_jsonl(te, test_file)
    ev = subprocess.run([sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '-m', 'vr1_nb.cli',
                         'eval', '-c', 'smoke', '--data', str(test_file), '--model', str(base), '--out', str(root/'eval')],
                        capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert json.loads((root/'eval'/'scores.json').read_text())['total'] == len(te)
    assert _unique_rows(root/'eval'/'predictions.jsonl', lambda r: r['id'])
    reports = [json.loads(f.read_text()) for f in audit.glob('rank*.json')]
    assert reports, "no rank > 0 process reported (the launches did not start 2 processes)"
    writes = [w for r in reports for w in r]
    # transformers' per-process RNG state is the one file each rank writes by design (a resume restores each rank's RNG)
    assert any(Path(w).name == 'rng_state_1.pth' for w in writes), writes      # the wrapper sees C++-level writes
    assert all(Path(w).name == 'rng_state_1.pth' and Path(w).parent.name.startswith('checkpoint-') for w in writes), writes

def _recording_vllm(monkeypatch, events, asked):
    "A stand-in `vllm`: engines answer '(B)' in the paper's layout, record the text asked, their build and teardown."
    import sys, types
    class LLM:
        def __init__(self, model, **kw): events.append('engine')
        def __del__(self): events.append('engine freed')
        def chat(self, messages, sampling_params, use_tqdm=True):
            asked.extend(m[-1]['content'][-1]['text'] for m in messages)
            out = lambda s: [types.SimpleNamespace(text='<think>look</think><answer>B</answer>')] * s.get('n', 1)
            return [types.SimpleNamespace(outputs=out(s)) for s in sampling_params]
    ps = types.ModuleType('vllm.distributed.parallel_state')
    ps.destroy_model_parallel, ps.destroy_distributed_environment = lambda: events.append('torn down'), lambda: None
    monkeypatch.setitem(sys.modules, 'vllm', types.SimpleNamespace(SamplingParams=lambda **kw: kw, LLM=LLM))
    monkeypatch.setitem(sys.modules, 'vllm.distributed', types.SimpleNamespace(parallel_state=ps))
    monkeypatch.setitem(sys.modules, 'vllm.distributed.parallel_state', ps)

def test_rounds_score_mathvista_under_the_presets_eval_and_free_each_engine(tmp_path, monkeypatch, shared_benchmarks):
    "OpenVLThinker's preset on MathVista rows: each stage scored as MathVista under eval_openvlthinker.py's protocol."
    from PIL import Image
    from vr1_nb import iterate, synth
    from vr1_nb.core import load_config, R1_INSTRUCTION
    src = json.loads((shared_benchmarks/'mathvista'/'testmini.json').read_text())
    part = {k: src[k] for k in list(src)[:6]}
    (tmp_path/'mv'/'images').mkdir(parents=True)
    for r in part.values(): Image.new('RGB', (28, 28)).save(tmp_path/'mv'/r['image'])
    (tmp_path/'mv'/'testmini.json').write_text(json.dumps(part))
    events, asked = [], []
    _recording_vllm(monkeypatch, events, asked)
    monkeypatch.setattr(iterate, 'run_step', lambda kind, cfg, train, out, *a, **k: Path(out))   # no training here
    monkeypatch.setattr(iterate, 'grpo_phases', lambda cfg, *a, **k: (Path(cfg['model']['path']), []))
    tr = synth.generate(4, seed=1)
    cfg = {k: v for k, v in load_config('openvlthinker-7b').items() if k != 'curriculum'}
    cfg['model']['path'] = str(tmp_path/'base')
    cfg['iterate'] = dict(rounds=1, sft_set=[dict(r, response=synth.r1_response(r)) for r in tr], rl=tr, samples=1,
                          test=str(tmp_path/'mv'/'testmini.json'), curriculum=False, launch=None)
    summ = iterate.iterate_run(cfg, tmp_path/'run')
    sc = json.loads((tmp_path/'run'/'round1'/'eval-sft'/'scores.json').read_text())
    p = sc['protocol']
    assert (sc['benchmark'], sc['total'], summ['benchmark']) == ('mathvista', 6, 'mathvista')
    assert (p['name'], p['prompt'], p['instruction'], p['temperature'], p['top_k'], p['max_tokens']) == \
           ('openvlthinker', 'query', None, 0.01, 1, 2048)
    assert summ['rounds'][0]['acc_sft'] == sc['accuracy'] and summ['base'] is not None
    rows = [json.loads(l) for l in (tmp_path/'run'/'round1'/'eval-grpo'/'predictions.jsonl').read_text().splitlines()]
    mc = [r for r in rows if r['choices']]
    assert mc and all(r['answer'] in 'ABCDE' for r in mc)                     # the gold a letter, the choices kept
    assert all(r['correct'] == (r['answer'] == 'B') for r in mc)             # scored by MathVista's convention
    on_test = [t for t in asked if any(v['question'][:40] in t for v in part.values())]
    assert len(on_test) == 3 * 6 and not any(R1_INSTRUCTION in t for t in on_test)   # no instruction: the question
    assert events == ['engine', 'engine freed', 'torn down'] * 4              # base, SFT, GRPO evaluations, rejection
