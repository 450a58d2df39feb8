"CLI smoke runs: real subprocesses of `vr1`, as a user types them."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from vr1_nb.core import list_presets, load_jsonl
from vr1_nb.answers import verify_answer, extract_answer

VR1 = [str(Path(sys.executable).parent/'vr1')]  # the installed console script, as a user runs it

def vr1(*args, ok=True, cwd=None, timeout=600):
    r = subprocess.run(VR1 + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if ok: assert r.returncode == 0, f"vr1 {' '.join(map(str, args))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r

def test_help_lists_every_stage():
    out = vr1('--help').stdout
    for cmd in ('synth', 'bridge', 'filter', 'sft', 'grpo', 'iterate', 'eval', 'score', 'serve', 'demo'): assert cmd in out

def test_every_gpu_preset_dry_run():
    "Every GPU preset validates, plans within its cards and builds its trainers on a tiny checkpoint, without weights or network."
    out = vr1('presets', 'check').stdout.splitlines()
    reps = {r['name']: r for r in (json.loads(l) for l in out if l.startswith('{'))}
    gpu = [p for p in list_presets() if p not in ('tiny-cpu', 'smoke')]
    assert len(gpu) >= 3 and set(gpu) <= set(reps)
    for name in gpu:
        rep = reps[name]
        assert rep['stages'] and all(s['num_generations'] > 1 for s in rep['stages']), name
        assert rep['plan']['errors'] == [], (name, rep['plan']['errors'])
        assert all(st['per_gpu']['total'] <= rep['plan']['hardware']['gpu_mem_gib'] for st in rep['plan']['stages']), name
        assert [t['trainer'] for t in rep['construction']['trainers']] == ['sft'] + [s['name'] for s in rep['stages']], name
    assert any(l.startswith('stage ') for l in out) and any('KV:' in l for l in out)   # the per-stage plan is printed

def test_bad_config_is_one_line_error(tmp_path):
    (tmp_path/'bad.yaml').write_text('base: smoke\ngrpo: {learning_rte: 1}\n')
    r = vr1('grpo', '--config', tmp_path/'bad.yaml', '--dry-run', ok=False)
    assert r.returncode != 0 and 'Traceback' not in r.stderr and "did you mean 'learning_rate'" in r.stderr
    r = vr1('sft', '--config', 'nope', '--train', 'x.jsonl', ok=False)
    assert r.returncode != 0 and 'Traceback' not in r.stderr and 'neither a YAML file nor a preset' in r.stderr

def test_score_mathvista_official_counts(shared_benchmarks):
    mv = shared_benchmarks/'mathvista'
    for name, want in (('random_guess', 179), ('frequent_guess', 263), ('llava_llama_2_13b', 261)):
        rep = json.loads(vr1('score', '-b', 'mathvista', '-p', mv/'results'/f'output_{name}.json', '-d', mv/'testmini.json', '--compact').stdout)
        assert (rep['correct'], rep['total']) == (want, 1000), name

def test_score_mathvision_modes(shared_benchmarks):
    mv = shared_benchmarks/'mathvision'
    got = {m: json.loads(vr1('score', '-b', 'mathvision', '-p', mv/'outputs'/'ChatGPT3.5-CoT.jsonl', '-d', mv/'test.jsonl',
                             '--mathv-mode', m, '--compact').stdout) for m in ('official', 'corrected')}
    assert (got['official']['correct'], got['official']['mode']) == (296, 'official')   # the published 296/3040
    assert (got['corrected']['correct'], got['corrected']['mode']) == (318, 'corrected')

def test_synth_bridge_filter_cold_start(tmp_path):
    "Issue 4's done-when: on synthetic data with the scene teacher, bridge + filter keep only verifying chains, yield < 100%."
    vr1('synth', '-c', 'smoke', '-o', tmp_path/'data', '--n-train', 40, '--n-test', 8)
    vr1('bridge', '-c', 'smoke', '--problems', tmp_path/'data'/'train.jsonl', '-o', tmp_path/'bridge')
    vr1('filter', '-c', 'smoke', '-i', tmp_path/'bridge', '-o', tmp_path/'filter')
    kept = load_jsonl(tmp_path/'filter'/'cold_start.jsonl')
    assert 0 < len(kept) < 40
    for r in kept:
        assert verify_answer(extract_answer(r['response']), r['answer'], choices=r.get('choices')), r['id']
    assert (tmp_path/'filter'/'COMPLETE').exists()
    again = vr1('bridge', '-c', 'smoke', '--problems', tmp_path/'data'/'train.jsonl', '-o', tmp_path/'bridge', ok=False)
    assert again.returncode != 0 and '--resume' in again.stderr

def test_openvlthinker_curriculum_dry_run_shows_medium_then_hard():
    "`vr1 grpo` and `vr1 iterate` on OpenVLThinker's preset plan its two GRPO phases in order, with the preset's schedule."
    from vr1_nb.core import load_config
    from vr1_nb.grpo import curriculum_phases
    want = [(p['name'], p['max_steps']) for p in curriculum_phases(load_config('openvlthinker-7b'), processes=8)]
    assert [n for n, _ in want] == ['medium', 'hard'] and want[0][1] == 118   # 5 episodes x 3,000 x 5 samples / 640 per step
    for cmd in ('grpo', 'iterate'):
        out = vr1(cmd, '-c', 'openvlthinker-7b', '--dry-run', '--no-build').stdout.splitlines()
        rep = json.loads(out[-1])
        assert [(s['name'], s['last_step'] - s['first_step'] + 1) for s in rep['stages']] == want, cmd
        lines = [l for l in out if l.startswith('stage ')]
        assert lines[0].startswith('stage medium') and lines[1].startswith('stage hard'), lines

def test_every_gpu_preset_value_carries_its_source():
    "Each value of a GPU preset names its source on its line, above it, or in its section's comment (the docs' tables)."
    from vr1_nb.cli import preset_settings
    for name in ('vision-r1-7b', 'openvlthinker-7b', 'othink-mr1-2b'):
        rows = preset_settings(name)
        assert len(rows) > 40 and [r['key'] for r in rows if not r['source'].strip()] == [], name

MALFORMED = '{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", "question": \n'
COMMANDS = {   # each command fed the malformed file where it reads data; OUT is its run directory
    'sft': ['sft', '-c', 'smoke', '-t', 'BAD', '-o', 'OUT'], 'grpo': ['grpo', '-c', 'smoke', '-t', 'BAD', '-o', 'OUT'],
    'eval': ['eval', '-c', 'smoke', '-d', 'BAD', '-o', 'OUT'], 'filter': ['filter', '-c', 'smoke', '-i', 'BAD', '-o', 'OUT'],
    'bridge': ['bridge', '-c', 'smoke', '--problems', 'BAD', '-o', 'OUT'],
    'iterate': ['iterate', '-c', 'smoke', '--set', 'iterate.sft_set=BAD', '--set', 'iterate.rl=BAD', '--set', 'iterate.test=BAD', '-o', 'OUT'],
    'score': ['score', '-b', 'mathvista', '-p', 'BAD'], 'data': ['data', 'check', 'BAD', '-c', 'smoke', '--stage', 'sft']}

@pytest.mark.parametrize('name', sorted(COMMANDS))
def test_malformed_input_is_one_line_and_leaves_no_run(name, tmp_path):
    "A malformed JSONL line: exit code 1, one line naming the file and line, no traceback, no run directory left behind."
    bad, out = tmp_path/'bad.jsonl', tmp_path/'out'
    bad.write_text(MALFORMED)
    sub = lambda a: a.replace('BAD', str(bad)).replace('OUT', str(out)) if a in ('BAD', 'OUT') or '=BAD' in a else a
    r = vr1(*map(sub, COMMANDS[name]), ok=False, cwd=tmp_path)
    lines = [l for l in r.stderr.splitlines() if l.startswith('vr1:')]
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and 'bad.jsonl' in lines[0] and 'line 2' in lines[0], r.stderr[-2000:]
    assert not out.exists()

def test_wrong_shaped_prediction_file_is_named(tmp_path):
    "`vr1 score` on a prediction file of the wrong shape says what shape it expected (it used to end in a TypeError)."
    (tmp_path/'preds.json').write_text('[1, 2, 3]')
    r = vr1('score', '-b', 'mathvision', '-p', str(tmp_path/'preds.json'), ok=False)
    assert r.returncode == 1 and 'Traceback' not in r.stderr and 'preds.json' in r.stderr and 'expected' in r.stderr
