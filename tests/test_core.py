"Contracts of vr1_nb.core that later stages rely on."
import json, os, subprocess, sys
import pytest
from PIL import Image
from vr1_nb.core import *

def _rec(i, **kw): return {'id': f'r{i}', 'question': f'q{i}', 'answer': str(i), 'answer_type': 'integer', **kw}

def test_jsonl_roundtrip_with_images_is_byte_stable(tmp_path):
    recs = [_rec(i, images=[Image.new('RGB', (28, 28), (i*40, 0, 0))], metadata={'scene': {'n': i}}) for i in range(3)]
    save_jsonl(recs, tmp_path/'a.jsonl'); save_jsonl(load_jsonl(tmp_path/'a.jsonl'), tmp_path/'b.jsonl')
    a = (tmp_path/'a.jsonl').read_text().replace('a_images', 'X'); b = (tmp_path/'b.jsonl').read_text().replace('b_images', 'X')
    assert a == b
    assert (tmp_path/'a_images'/'r2_0.png').read_bytes() == (tmp_path/'b_images'/'r2_0.png').read_bytes()

def test_bad_records_name_id_and_field(tmp_path):
    with pytest.raises(RecordError) as e: validate_record(_rec(1, images='x.png'))
    assert (e.value.record_id, e.value.field) == ('r1', 'images')
    with pytest.raises(RecordError, match="field 'metadata'"): validate_record(_rec(2, metadata='{not json'))
    with pytest.raises(RecordError, match="duplicate id"): save_jsonl([_rec(1), _rec(1)], tmp_path/'d.jsonl')

def test_failed_write_keeps_previous_file(tmp_path):
    p = tmp_path/'a.jsonl'; save_jsonl([_rec(1)], p); before = p.read_text()
    with pytest.raises(RecordError): save_jsonl([_rec(2), _rec(3, answer_type='nope')], p)
    assert p.read_text() == before

def test_images_open_from_the_library(tmp_path):
    "Images written by save_jsonl open again through the module's own code (not a notebook's imports)."
    save_jsonl([_rec(1, images=[Image.new('RGB', (56, 28), 'blue')])], tmp_path/'a.jsonl')
    rec = load_jsonl(tmp_path/'a.jsonl', open_images=True)[0]
    assert rec['images'][0].size == (56, 28) and rec['images'][0].getpixel((0, 0)) == (0, 0, 255)
    assert open_images(load_jsonl(tmp_path/'a.jsonl')[0])[0].size == (56, 28)

def test_corrupt_image_is_reported(tmp_path):
    (tmp_path/'bad.png').write_bytes(b'not a png')
    rec = validate_record(_rec(1, images=[str(tmp_path/'bad.png')]))
    with pytest.raises(RecordError, match="'r1'.*unreadable"): open_images(rec)

def test_mixed_metadata_concatenates_in_arrow():
    from datasets import concatenate_datasets
    a = to_dataset([_rec(1, metadata={'family': 'counting', 'scene': {'objects': [1, 2]}})])
    b = to_dataset([_rec(2, metadata={'family': 'chart', 'values': [0.5]})])
    both = from_dataset(concatenate_datasets([a, b]))
    assert [r['metadata'].get('family') for r in both] == ['counting', 'chart']

def test_derive_seed_stable_across_processes():
    out = subprocess.run([sys.executable, '-c', 'from vr1_nb.core import derive_seed; print(derive_seed("a", 1))'],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert int(out) == derive_seed('a', 1)

def test_rundir_refuses_and_resumes(tmp_path):
    r = RunDir(tmp_path/'run', 'sft', config={'x': 1}, seed=3)
    m = json.loads((tmp_path/'run'/'manifest.json').read_text())
    assert m['seed'] == 3 and m['config'] == {'x': 1} and 'torch' in m['versions']
    with pytest.raises(RunExistsError): RunDir(tmp_path/'run', 'sft')
    r.complete(loss=0.1)
    assert RunDir(tmp_path/'run', 'sft', resume=True).is_complete
    (tmp_path/'other').mkdir(); (tmp_path/'other'/'f').write_text('x')
    with pytest.raises(RunExistsError, match='not a vr1 run'): RunDir(tmp_path/'other', 'sft', overwrite=False)

def test_every_preset_loads_and_trl_sections_validate():
    import trl
    for name in list_presets():
        cfg = load_config(name)
        for sec, cls in (('sft', trl.SFTConfig), ('grpo', trl.GRPOConfig)):
            if sec in cfg:
                known = {f.name for f in __import__('dataclasses').fields(cls)}
                assert set(cfg[sec]) <= known, (name, sec, set(cfg[sec]) - known)

def test_resolve_source_never_reaches_hub_offline(monkeypatch, tmp_path):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(FileNotFoundError, match='offline'): resolve_source('Qwen/Qwen2-VL-2B-Instruct')
    monkeypatch.delenv('HF_HUB_OFFLINE'); monkeypatch.delenv('TRANSFORMERS_OFFLINE', raising=False); monkeypatch.delenv('HF_DATASETS_OFFLINE', raising=False)
    assert resolve_source('Qwen/Qwen2-VL-2B-Instruct') == 'Qwen/Qwen2-VL-2B-Instruct'
    assert resolve_source(tmp_path) == tmp_path
