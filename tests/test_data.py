"""The papers' released layouts into the stages (issue 15, items 1-3, 8, 9): fixtures in tests/fixtures/released/ (one
or two literal rows per layout; SOURCES.md gives each file's source, file@commit or dataset card), images created here."""
import io, json, os, shutil, subprocess, sys, threading, time
from pathlib import Path
import pytest
from PIL import Image
from vr1_nb import data as D
from vr1_nb.core import load_problems, resolve_source, to_prompt

FIX = Path(__file__).parent/'fixtures'/'released'
VR1 = [str(Path(sys.executable).parent/'vr1')]
FORMAT_OF = {'vision_r1_llava_cot_full.json': 'sharegpt', 'vision_r1_mulberry_sft_full.json': 'sharegpt',
             'openvlthinker_sft.json': 'sharegpt', 'geometry3k_easyr1.jsonl': 'easyr1', 'clevr_cogen_a_train.jsonl': 'r1v',
             'geoqa_r1v_train_8k.jsonl': 'r1v', 'superclevr_test200_counting_problems.jsonl': 'r1v_test',
             'geoqa_test_prompts.jsonl': 'r1v_test'}
CAP = 12544   # <= 16 visual tokens, below the tiny processor's 224x224 limit: the processor keeps the capped size

@pytest.fixture(autouse=True)
def _data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('VR1_DATA_CACHE', str(tmp_path/'data-cache'))

def vr1(*args, ok=True, env=None):
    r = subprocess.run(VR1 + [str(a) for a in args], capture_output=True, text=True, timeout=900,
                       env={**os.environ, **(env or {})})
    if ok: assert r.returncode == 0, f"vr1 {' '.join(map(str, args))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r

def _png(path, size=(300, 200), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new('RGB', size, (40 * seed % 255, 120, 200)); im.paste((255, 255, 0), (10, 10, 60, 50)); im.save(path)
    return path

def released(tmp_path, name, size=(300, 200)) -> Path:
    "The fixture copied into tmp_path/rel, with every image its rows name created (relative to the file, as shipped)."
    dest = tmp_path/'rel'; dest.mkdir(exist_ok=True); src = shutil.copy(FIX/name, dest/name)
    for i, (_, _, row) in enumerate(D.iter_rows(src)):
        for key in ('image', 'images', 'image_path'):
            for p in ([row[key]] if isinstance(row.get(key), str) else row.get(key) or []): _png(dest/p, size, i)
    return Path(src)

def image_files(root): return sorted(str(p) for p in Path(root).rglob('*') if p.suffix in ('.png', '.jpg', '.jpeg'))

def _embedded_parquet(rows, path, size=(300, 200)):
    "A hub-style Parquet of `rows` with the images embedded (the form the EasyR1 / R1-V sets ship in)."
    import datasets
    def png(i):
        b = io.BytesIO(); Image.new('RGB', size, (i * 60 % 255, 10, 10)).save(b, format='PNG'); return b.getvalue()
    cols = {k: [r[k] for r in rows] for k in rows[0] if k not in ('image', 'images')}
    key = 'images' if 'images' in rows[0] else 'image'
    cell = lambda i: {'bytes': png(i), 'path': None}
    cols[key] = [[cell(i)] if key == 'images' else cell(i) for i in range(len(rows))]
    feat = datasets.Sequence(datasets.Image()) if key == 'images' else datasets.Image()
    datasets.Dataset.from_dict(cols).cast_column(key, feat).to_parquet(str(path))
    return [c[0]['bytes'] if key == 'images' else c['bytes'] for c in cols[key]]

@pytest.mark.parametrize('name', sorted(FORMAT_OF))
def test_each_released_layout_imports_with_images_referenced_not_copied(tmp_path, name):
    src = released(tmp_path, name); before = image_files(tmp_path)
    s = D.import_dataset(src, tmp_path/'conv')
    n = sum(1 for _ in D.iter_rows(src))
    assert (s['format'], s['records'], s['bad']) == (FORMAT_OF[name], n, 0)
    assert image_files(tmp_path) == before   # no image written anywhere
    import datasets
    table = datasets.load_from_disk(str(tmp_path/'conv')).data.table
    cells = [im for ims in table.column('images').to_pylist() for im in ims]
    assert cells and all(c['bytes'] is None and c['path'] in before for c in cells)

def test_released_rows_become_faithful_records(tmp_path):
    got = {n: load_problems(D.import_dataset(released(tmp_path, n), tmp_path/n.split('.')[0])['out']) for n in FORMAT_OF}
    clevr, geoqa = got['clevr_cogen_a_train.jsonl'], got['geoqa_r1v_train_8k.jsonl']
    assert [r['answer'] for r in clevr] == ['3', '10'] and clevr[0]['response'] == '<answer> 3 </answer>'   # the gold: '3'
    assert (geoqa[0]['answer'], geoqa[0]['question'][:28]) == ('29°', 'If AB is the tangent to circ')
    g3k = got['geometry3k_easyr1.jsonl']
    assert [(r['question'], r['answer']) for r in g3k] == [('Find x.', '3'), ('Find $m \\angle 2$.', '34')]   # <image> out
    sc, gt = got['superclevr_test200_counting_problems.jsonl'], got['geoqa_test_prompts.jsonl']
    assert [r['answer'] for r in sc] == ['4', '9'] and sc[0]['images'][0].endswith('images/superCLEVR_new_025000.png')
    assert [r['answer'] for r in gt] == ['140°', '65°'] and sc[0]['source'] == 'superclevr_test200_counting_problems'
    lc, mb = got['vision_r1_llava_cot_full.json'][0], got['vision_r1_mulberry_sft_full.json'][0]
    ov = got['openvlthinker_sft.json'][0]
    assert (lc['id'], lc['answer'], lc['question'][:25]) == ('sqa-2115', 'C', 'Which of these states is ')
    assert lc['response'].startswith('<think>\nThe map')
    assert lc['images'][0].endswith('llava_cot_images/sqa/train/2115/image.png')
    assert (mb['id'], mb['answer']) == ('vision_r1_mulberry_sft_full-000000', 'D')
    assert (ov['question'], ov['response'], ov['answer']) == ('User instruction', 'Model response', '')
    assert lc['metadata']['origin']['where'] == '[0]' and sc[1]['metadata']['origin']['where'] == 'line 2'

def test_image_root_points_at_images_kept_elsewhere(tmp_path):
    "Vision-R1-cold's images live in a user-given folder (LLaVA-CoT-100k / Mulberry-SFT downloads), not beside the JSON."
    shutil.copy(FIX/'vision_r1_llava_cot_full.json', tmp_path/'cold.json')
    _png(tmp_path/'images'/'llava_cot_images/sqa/train/2115/image.png')
    with pytest.raises(D.DataError, match="1 bad record.*field 'images': image 0 not found"):
        D.import_dataset(tmp_path/'cold.json', tmp_path/'a')
    assert not (tmp_path/'a').exists() and (tmp_path/'a.bad_records.jsonl').exists()
    r = load_problems(D.import_dataset(tmp_path/'cold.json', tmp_path/'b', image_root=tmp_path/'images')['out'])[0]
    assert r['images'] == [str(tmp_path/'images'/'llava_cot_images/sqa/train/2115/image.png')]

def test_hub_parquet_images_stay_encoded_bytes_and_decode_capped(tmp_path):
    rows = [json.loads(l) for l in (FIX/'geometry3k_easyr1.jsonl').read_text().splitlines()]
    raw = _embedded_parquet(rows, tmp_path/'train-00000-of-00001.parquet', size=(600, 400))
    D.import_dataset(tmp_path/'train-00000-of-00001.parquet', tmp_path/'conv')
    import datasets
    stored = [c[0]['bytes'] for c in datasets.load_from_disk(str(tmp_path/'conv')).data.table.column('images').to_pylist()]
    assert stored == raw   # the PNG bytes verbatim: never decoded, never re-encoded
    ds = D.training_dataset(tmp_path/'conv', 'grpo', max_pixels=CAP, min_pixels=3136)
    assert ds[0]['images'][0].size == (112, 84) and ds[0]['answer'] == '3'   # smart_resize(400, 600) within 12,544 px

def test_training_images_come_out_capped_and_the_processor_counts_the_same_tokens(tmp_path):
    from vr1_nb.models import get_tiny_model
    src = released(tmp_path, 'clevr_cogen_a_train.jsonl', size=(1000, 750))
    proc = get_tiny_model('tiny')[1]
    ds = D.training_dataset(src, 'grpo', max_pixels=CAP, min_pixels=3136)
    im = ds[0]['images'][0]
    assert im.size == (112, 84)   # 1000x750 -> 112x84 (4 x 3 visual tokens): sides multiples of 28, area <= 12,544
    text = proc.apply_chat_template(ds[0]['prompt'], tokenize=False, add_generation_prompt=True)
    out = proc(text=[text], images=[im], return_tensors='pt')
    t, h, w = out['image_grid_thw'][0].tolist()
    assert (h * 14, w * 14) == (im.height, im.width)   # the processor kept the capped size: nothing left to resize
    rep = D.check_dataset(src, {'data': {'max_pixels': CAP, 'min_pixels': 3136}}, 'grpo', proc)
    assert rep['prompt_tokens']['max'] == out['input_ids'].shape[1] and rep['image_tokens']['max'] == t * h * w // 4

def test_training_set_is_built_once_and_holds_no_image_bytes(tmp_path):
    src = released(tmp_path, 'geometry3k_easyr1.jsonl')
    a, b = D.training_dataset(src, 'sft', column='answer'), D.training_dataset(src, 'sft', column='answer')
    assert a.cache_files == b.cache_files and len(list((tmp_path/'data-cache'/'train').iterdir())) == 1
    assert all(c[0]['bytes'] is None for c in a.data.table.column('images').to_pylist())
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))   # the source changed: rebuilt
    D.training_dataset(src, 'sft', column='answer')
    assert len(list((tmp_path/'data-cache'/'train').iterdir())) == 2

def test_other_ranks_wait_for_local_rank_0_and_see_its_failure(tmp_path, monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '1')
    done = tmp_path/'built'
    threading.Timer(1.0, lambda: (done.mkdir(), (done/'COMPLETE').touch())).start()
    assert D.build_once(done, lambda d: 1/0, timeout=30) == done   # waited for rank 0 instead of building
    (tmp_path/'broken.FAILED').write_text("data.jsonl, line 3: not valid JSON")
    with pytest.raises(D.DataError, match='line 3: not valid JSON'):
        D.build_once(tmp_path/'broken', lambda d: None, timeout=30)

PLANTED = [  # (row, bad field or None): an EasyR1-layout RL set with one of each kind of bad record
    ({'id': 'ok', 'images': ['img/ok.png'], 'problem': '<image>Find x.', 'answer': '3'}, None),
    ({'id': 'no-file', 'images': ['img/missing.png'], 'problem': '<image>Find y.', 'answer': '4'}, ('images', 'not found')),
    ({'id': 'corrupt', 'images': ['img/corrupt.png'], 'problem': '<image>Find z.', 'answer': '5'},
     ('images', 'cannot be opened')),
    ({'id': 'two-images', 'images': ['img/ok.png', 'img/ok.png'], 'problem': '<image>Find w.', 'answer': '6'},
     ('images', '2 image(s) but 1 <image>')),
    ({'id': 'gold', 'images': ['img/ok.png'], 'problem': '<image>Prove it.', 'answer': 'Step. ' * 200},
     ('answer', 'does not verify against itself')),
    ({'id': 'no-gold', 'images': ['img/ok.png'], 'problem': '<image>Find v.', 'answer': ''}, ('answer', 'expected one gold answer')),
    ({'id': 'ok', 'images': ['img/ok.png'], 'problem': '<image>Find u.', 'answer': '7'}, ('id', 'duplicate id')),
    ({'id': 'long', 'images': ['img/ok.png'], 'problem': '<image>' + 'Read the figure carefully. ' * 40, 'answer': '8'},
     ('prompt', '> data.max_prompt_tokens=80')),
]

LIMITS = ['--set', 'data.max_prompt_tokens=80', '--set', f'data.max_pixels={CAP}']

def _planted(tmp_path):
    _png(tmp_path/'img'/'ok.png'); (tmp_path/'img'/'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    (tmp_path/'rl.jsonl').write_text(''.join(json.dumps(r)+'\n' for r, _ in PLANTED))
    return tmp_path/'rl.jsonl'

def test_check_lists_each_planted_bad_record_with_its_reason(tmp_path):
    src = _planted(tmp_path)
    r = vr1('data', 'check', src, '-c', 'smoke', '--stage', 'grpo', *LIMITS, '--bad-out', tmp_path/'bad.jsonl', ok=False)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    bad = [l for l in r.stdout.splitlines() if l.startswith('bad: ')]
    want = [(n, row['id'], why) for n, (row, why) in enumerate(PLANTED, 1) if why]
    assert len(bad) == len(want) == len(D._read_jsonl(tmp_path/'bad.jsonl'))
    for n, rid, (field, reason) in want:
        assert any(f"line {n}: record {rid!r}, field {field!r}" in l and reason in l for l in bad), (n, field, reason, bad)
    assert 'image tokens per image: n 3, mean 12.0' in r.stdout   # 3 records converted and opened: 300x200 -> 4 x 3 tokens

def test_bad_training_input_fails_in_one_line_before_the_run_opens(tmp_path):
    src, out = _planted(tmp_path), tmp_path/'runs'/'grpo'
    r = vr1('grpo', '-c', 'smoke', '-t', src, '-o', out, *LIMITS, ok=False)
    lines = [l for l in r.stderr.strip().splitlines() if not l.startswith('Loading weights')]
    assert r.returncode != 0 and 'Traceback' not in r.stderr and not out.exists(), r.stderr[-3000:]
    assert len(lines) == 1 and 'rl.jsonl: 7 bad record(s) of 8; first: ' in lines[0] and '--skip-bad' in lines[0], lines
    assert len(D._read_jsonl(Path(f"{out}.bad_records.jsonl"))) == 7
    r = vr1('grpo', '-c', 'smoke', '-t', src, '-o', out, *LIMITS, '--debug', ok=False)
    assert 'Traceback' in r.stderr and 'DataError' in r.stderr and not out.exists()

def test_skip_bad_keeps_the_good_records_and_the_list(tmp_path):
    from vr1_nb.models import get_tiny_model
    src = _planted(tmp_path)
    cfg = {'model': {'path': 'tiny:tiny'}, 'data': {'max_prompt_tokens': 80, 'max_pixels': CAP}}
    kept = D.stage_input(src, cfg, 'grpo', out=tmp_path/'run', skip_bad=True, processor=get_tiny_model('tiny')[1])
    assert [r['id'] for r in load_problems(kept)] == ['ok'] and len(D._read_jsonl(tmp_path/'run.bad_records.jsonl')) == 7

def test_fixtures_feed_their_stages_on_the_tiny_model(tmp_path):
    """Each layout into the stage it feeds: the sharegpt SFT sets (one through `vr1 data import`, one read directly) into one
    SFT step each, the R1-V RL file read directly and a hub-style EasyR1 Parquet (images embedded) through `vr1 data import`
    into one GRPO step each, R1-V's test layout into `vr1 eval`."""
    cap = ['--set', f'data.max_pixels={CAP}', '--set', 'data.min_pixels=3136']
    one_grpo_step = ['--set', 'grpo.per_device_train_batch_size=2',
                     '--set', 'stages=[{name: s1, max_completion_length: 8, num_generations: 2, max_steps: 1}]']
    cold = released(tmp_path, 'vision_r1_llava_cot_full.json', size=(1000, 750))
    mulberry = released(tmp_path, 'vision_r1_mulberry_sft_full.json', size=(640, 480))
    clevr = released(tmp_path, 'clevr_cogen_a_train.jsonl', size=(1000, 750))
    test = released(tmp_path, 'superclevr_test200_counting_problems.jsonl', size=(480, 320))
    g3k = [json.loads(l) for l in (FIX/'geometry3k_easyr1.jsonl').read_text().splitlines()]
    _embedded_parquet(g3k, tmp_path/'g3k.parquet', (600, 400))
    before = image_files(tmp_path)
    vr1('data', 'import', cold, '-o', tmp_path/'cold')
    vr1('sft', '-c', 'smoke', '-t', tmp_path/'cold', '-o', tmp_path/'sft', '--set', 'sft.max_steps=1', *cap)
    vr1('sft', '-c', 'smoke', '-t', mulberry, '-o', tmp_path/'sft2', '--set', 'sft.max_steps=1', *cap)
    vr1('grpo', '-c', 'smoke', '-t', clevr, '-o', tmp_path/'grpo', *one_grpo_step, *cap)
    vr1('data', 'import', tmp_path/'g3k.parquet', '-o', tmp_path/'g3k')
    vr1('grpo', '-c', 'smoke', '-t', tmp_path/'g3k', '-o', tmp_path/'grpo2', *one_grpo_step, *cap)
    vr1('eval', '-c', 'smoke', '-d', test, '-m', 'tiny:tiny', '-o', tmp_path/'eval', '--set', 'eval.max_new_tokens=4')
    assert all((tmp_path/d/'COMPLETE').exists() for d in ('sft', 'sft2', 'grpo', 'grpo2'))
    assert len(D._read_jsonl(tmp_path/'eval'/'predictions.jsonl')) == 2
    assert [p for p in image_files(tmp_path) if '/eval/' not in p] == before   # no image copied (eval draws its plots)
    sft = D.training_dataset(tmp_path/'cold', 'sft', max_pixels=CAP, min_pixels=3136)
    assert sft[0]['images'][0].size == (112, 84)   # what the SFT step saw: the 1000x750 image capped once, in the dataset

def test_eval_images_keep_their_resolution_unless_eval_caps_them(tmp_path):
    from vr1_nb.evaluate import load_eval_data
    src = released(tmp_path, 'superclevr_test200_counting_problems.jsonl', size=(480, 320))
    recs = load_eval_data(src)   # Vision-R1's protocol: eval.max_pixels null, the checkpoint processor decides
    assert Image.open(recs[0]['images'][0]).size == (480, 320) and recs[0]['answer'] == '4'
    capped = load_eval_data(src, pixels=D.pixel_caps({'eval': {'max_pixels': CAP}}, 'eval'))
    assert capped[0]['images'][0].size == (112, 84)

def test_cached_hub_ids_load_offline_and_a_missing_one_is_a_clear_error(tmp_path, monkeypatch):
    from vr1_nb import models
    hub = tmp_path/'hf'/'hub'
    monkeypatch.setenv('HF_HOME', str(tmp_path/'hf')); monkeypatch.delenv('HF_HUB_CACHE', raising=False)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    tiny = models.default_cache_dir()/models.tiny_model_key('tiny')
    models.get_tiny_model('tiny')
    repo = hub/'models--org--tiny-vl'   # the layout huggingface_hub writes: models--org--name/snapshots/<rev>, refs/main
    shutil.copytree(tiny, repo/'snapshots'/'5d1c0ffee'); (repo/'refs').mkdir(); (repo/'refs'/'main').write_text('5d1c0ffee')
    model, proc = models.load_model('org/tiny-vl')
    assert model.config.model_type == 'qwen2_vl' and resolve_source('org/tiny-vl') == repo/'snapshots'/'5d1c0ffee'
    ds = hub/'datasets--org--clevr'/'snapshots'/'a1b2c3'/'data'; ds.mkdir(parents=True)
    rows = [json.loads(l) for l in (FIX/'clevr_cogen_a_train.jsonl').read_text().splitlines()]
    _embedded_parquet(rows, ds/'train-00000-of-00001.parquet'); (hub/'datasets--org--clevr'/'refs').mkdir()
    (hub/'datasets--org--clevr'/'refs'/'main').write_text('a1b2c3')
    assert [r['answer'] for r, _, _ in D.iter_records('org/clevr')] == ['3', '10']
    with pytest.raises(FileNotFoundError, match=r"'org/missing': no such local path, not in the local hub cache \(.*hf/hub\)"):
        models.load_model('org/missing')
    r = vr1('data', 'inspect', 'org/missing', ok=False, env={'HF_HOME': str(tmp_path/'hf'), 'HF_HUB_OFFLINE': '1'})
    assert r.returncode != 0 and 'Traceback' not in r.stderr and 'not in the local hub cache' in r.stderr

BENCH_FILES = {'mathvista': 'mathvista/testmini.json', 'mathverse': 'mathverse/testmini_text_only.json',
               'mathvision': 'mathvision/testmini.jsonl'}

@pytest.mark.parametrize('bench', sorted(BENCH_FILES))
def test_benchmark_rows_are_read_as_their_benchmark(shared_benchmarks, bench):
    "Every row of the real testmini files is its benchmark's (MathVista's was `mm_math`: choices dropped, text gold)."
    from vr1_nb import benchmarks
    path = shared_benchmarks/BENCH_FILES[bench]
    rows = [row for _, _, row in D.iter_rows(path)]
    assert {D.detect_format(r) for r in rows} == {bench} and D.benchmark_of(path) == bench
    want = getattr(benchmarks, f'load_{bench}')(path)
    got = [D.to_record(r, bench, f'r{i}', path.parent) for i, r in enumerate(rows)]
    keys = ('id', 'question', 'choices', 'answer', 'answer_text', 'answer_type', 'source', 'images')
    assert [{k: r[k] for k in keys} for r in got] == [{k: r[k] for k in keys} for r in want]
    if bench == 'mathvista':
        mc = [r for r in got if r['choices']]
        assert len(mc) > 400 and all(r['answer'] in 'ABCDEFGH' and r['answer_text'] in r['choices'] for r in mc)

def test_a_mathvista_file_with_its_images_imports_as_mathvista(shared_benchmarks, tmp_path):
    "MathVista's object layout (pid -> problem) converts with its choices; images resolved against the file's folder."
    src = json.loads((shared_benchmarks/'mathvista'/'testmini.json').read_text())
    part = {k: src[k] for k in list(src)[:5]}
    (tmp_path/'mv'/'images').mkdir(parents=True)
    for r in part.values(): Image.new('RGB', (8, 8)).save(tmp_path/'mv'/r['image'])
    (tmp_path/'mv'/'testmini.json').write_text(json.dumps(part))
    summ = D.import_dataset(tmp_path/'mv'/'testmini.json', tmp_path/'out')
    recs = load_problems(summ['out'])
    assert (summ['format'], summ['records']) == ('mathvista', 5)
    assert [r['choices'] for r in recs] == [list(v['choices'] or []) for v in part.values()]
    assert all(r['source'] == 'mathvista' and Path(r['images'][0]).exists() for r in recs)
