"vr1_nb.benchmarks: loaders into the record schema from the shared third-party files, and prediction readers."
import json, re
from pathlib import Path
import pytest
from vr1_nb.benchmarks import (load_mathvista, load_mathvision, load_mathverse, read_predictions, split_choices, mathvista_record,
                               mathverse_record)
from vr1_nb.core import validate_record, RecordError, LETTERS, save_jsonl, load_jsonl

BENCH = Path(__file__).parents[2] / 'shared' / 'benchmarks'
pytestmark = pytest.mark.skipif(not BENCH.exists(), reason='../shared/benchmarks not present')


def test_mathvista_records():
    recs = load_mathvista(BENCH / 'mathvista' / 'testmini.json')
    raw = json.loads((BENCH / 'mathvista' / 'testmini.json').read_text())
    assert len(recs) == 1000 and len({r['id'] for r in recs}) == 1000
    for r in recs:
        src = raw[r['id']]
        assert isinstance(r['images'], list) and r['source'] == 'mathvista'
        if src['choices']:
            assert r['answer_type'] == 'multiple_choice' and r['choices'][LETTERS.index(r['answer'])] == src['answer'] == r['answer_text']
        else:
            assert r['answer'] == src['answer'] and r['answer_type'] == src['answer_type'] and r['choices'] == []
        assert r['metadata']['precision'] == src['precision'] and r['metadata']['skills'] == src['metadata']['skills']


def test_mathvision_records():
    for f, n in (('test.jsonl', 3040), ('testmini.jsonl', 304)):
        recs = load_mathvision(BENCH / 'mathvision' / f)
        assert len(recs) == n
        assert {r['answer_type'] for r in recs if r['choices']} == {'multiple_choice'}
        assert all(r['metadata']['level'] in (1, 2, 3, 4, 5) and r['metadata']['subject'] for r in recs)
        assert all(r['answer'] in LETTERS[:len(r['choices'])] for r in recs if r['choices'])


def test_mathverse_keeps_problem_version_and_splits_choices():
    recs = load_mathverse(BENCH / 'mathverse' / 'testmini_text_only.json')
    assert len(recs) == 788 and {r['metadata']['problem_version'] for r in recs} == {'Text Only'}
    mc = [r for r in recs if r['answer_type'] == 'multiple_choice']
    assert len(mc) == 434 and all(not re.search(r'Choices?\s*:', r['question']) for r in mc)
    assert all(re.search(r'Choices?\s*:', r['metadata']['question_with_choices']) for r in mc)


def test_split_choices_variants():
    assert split_choices('Q\nChoices:\nA. 1\nB. 2') == ('Q', ['1', '2'])
    assert split_choices('Q\nChoices:\n(A) 1\n(B) 2') == ('Q', ['1', '2'])
    assert split_choices('Q\nChoices:\nB:1\nA:2') == ('Q\nChoices:\nB:1\nA:2', [])     # out of order: not a choices block


def test_records_round_trip_through_core(tmp_path):
    recs = load_mathvision(BENCH / 'mathvision' / 'testmini.jsonl')[:5]
    for r in recs: r['images'] = []       # the shared copy has no image files
    save_jsonl(recs, tmp_path / 'x.jsonl')
    back = load_jsonl(tmp_path / 'x.jsonl')
    assert [b['answer'] for b in back] == [r['answer'] for r in recs]


def test_bad_rows_name_the_record():
    with pytest.raises(RecordError, match='7'):
        mathvista_record(dict(pid='7', question='q', choices=['a', 'b'], answer='c', question_type='multi_choice', answer_type='text'))
    with pytest.raises(FileNotFoundError): load_mathvista('/nonexistent/testmini.json')


def test_hub_ids_refused_offline(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(FileNotFoundError, match='offline'): load_mathvista('AI4Math/MathVista')


def test_read_predictions_formats(tmp_path):
    p = read_predictions(BENCH / 'mathvista' / 'results' / 'output_llava_llama_2_13b.json')
    assert len(p) == 1000 and all('response' in x and 'extraction' in x for x in p)
    p = read_predictions(BENCH / 'mathvision' / 'outputs' / 'Gemini-Pro-CoT.jsonl')
    assert len(p) == 3040 and p[0]['id'] == '1'
    ours = tmp_path / 'ours.jsonl'
    ours.write_text('{"id": 5, "response": "x", "prediction": "4"}\n\n{"id": "6", "response": ""}\n')
    assert read_predictions(ours) == [dict(id='5', response='x', prediction='4'), dict(id='6', response='')]
    (tmp_path / 'a.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match='pid -> record'): read_predictions(tmp_path / 'a.json')
    (tmp_path / 'b.jsonl').write_text('{"id": "1", "response": 3}\n')
    with pytest.raises(ValueError, match="'response'"): read_predictions(tmp_path / 'b.jsonl')

def test_cached_hub_snapshot_loads_offline(tmp_path, monkeypatch, shared_benchmarks):
    "A hub id already in the local cache (the hub's snapshot layout, images embedded in Parquet) loads with HF_HUB_OFFLINE=1."
    import io, datasets
    from PIL import Image
    from vr1_nb.generate import load_image
    monkeypatch.setenv('HF_HOME', str(tmp_path/'hf')); monkeypatch.delenv('HF_HUB_CACHE', raising=False)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    rows = list(json.loads((shared_benchmarks/'mathvista'/'testmini.json').read_text()).values())[:3]
    png = io.BytesIO(); Image.new('RGB', (40, 30), 'red').save(png, format='PNG')
    cols = {k: [r[k] for r in rows] for k in ('pid', 'question', 'answer', 'question_type', 'answer_type', 'choices', 'metadata')}
    cols['decoded_image'] = [{'bytes': png.getvalue(), 'path': None}] * len(rows)
    repo = tmp_path/'hf'/'hub'/'datasets--AI4Math--MathVista'; snap = repo/'snapshots'/'c0ffee'/'data'; snap.mkdir(parents=True)
    datasets.Dataset.from_dict(cols).cast_column('decoded_image', datasets.Image()).to_parquet(str(snap/'testmini-00000-of-00001.parquet'))
    (repo/'refs').mkdir(); (repo/'refs'/'main').write_text('c0ffee')
    recs = load_mathvista('AI4Math/MathVista')
    assert [r['id'] for r in recs] == [r['pid'] for r in rows]
    assert load_image(recs[0]['images'][0]).size == (40, 30)          # embedded bytes open where the harness opens images
    with pytest.raises(FileNotFoundError, match='not in the local hub cache'): load_mathvista('AI4Math/NoSuchSet')
