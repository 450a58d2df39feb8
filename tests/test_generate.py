"Contracts of vr1_nb.generate: the OpenAI path against a real local server, retries, clear failures, kill -9 + resume."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from PIL import Image
from vr1_nb.generate import *

REPO = Path(__file__).resolve().parents[1]

def _msgs(text, img=None):
    content = ([{"type": "image", "image": img}] if img is not None else []) + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]

def _echo(r):
    "A deterministic teacher: text depends on the prompt and the request's seed."
    text = r.messages[-1]["content"]
    if not isinstance(text, str): text = " ".join(p.get("text", "") for p in text)
    return [f"{text.upper()}#{r.seed % 1000}#{i}" for i in range(r.n)]

_SERVER = textwrap.dedent("""
    import sys, threading
    from vr1_nb.generate import serve, CallableBackend
    kind, fail = sys.argv[1], int(sys.argv[2])
    if kind == 'tiny': model = 'tiny'
    else:
        def echo(r):
            t = r.messages[-1]['content']
            t = t if isinstance(t, str) else ' '.join(p.get('text', '') for p in t)
            return [f"{t.upper()}#{r.seed % 1000}#{i}" for i in range(r.n)]
        model = CallableBackend(echo, 'echo')
    srv = serve(model, port=0, fail_first=fail, block=False)
    print(srv.base_url, flush=True)
    threading.Event().wait()
""")

@pytest.fixture
def server_proc():
    procs = []
    def start(kind='echo', fail=0):
        p = subprocess.Popen([sys.executable, '-c', _SERVER, kind, str(fail)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        procs.append(p)
        url = p.stdout.readline().strip()
        assert url.startswith('http://127.0.0.1:'), f"server did not start: {url!r}"
        return url
    yield start
    for p in procs: p.kill(); p.wait()

def test_openai_path_end_to_end_with_retry_after_injected_500(server_proc, tmp_path):
    url = server_proc('echo', fail=2)  # a real HTTP server in its own process
    oa = OpenAIBackend(url, 'echo', backoff=0.01, concurrency=2)
    reqs = [Request(f'q{i}', 'demo', 'echo', _msgs(f'hi {i}', Image.new('RGB', (4, 4))), n=2) for i in range(4)]
    with Store(tmp_path/'g.jsonl') as st: stats = run_requests(oa, reqs, st, progress=False)
    assert stats == dict(total=4, cached=0, new=4, failed=0)
    got = {d['key']: d for d in Store(tmp_path/'g.jsonl').values()}
    for r in reqs:  # every answer is the right one, and the request's seed reached the server
        assert got[r.key]['texts'] == _echo(r) and got[r.key]['error'] is None
    assert sum(d['attempts'] for d in got.values()) == 4 + 2  # the two injected 500s were retried

def test_retries_exhausted_are_not_stored_and_rerun_completes(tmp_path):
    srv = serve(CallableBackend(_echo, 'echo'), port=0, fail_first=3, block=False)
    try:
        oa = OpenAIBackend(srv.base_url, 'echo', backoff=0.01, max_retries=1, concurrency=1)
        r = [Request('a', 's', 'echo', _msgs('x'))]
        with Store(tmp_path/'g.jsonl') as st:
            assert run_requests(oa, r, st, progress=False)['failed'] == 1 and len(st) == 0
            assert run_requests(oa, r, st, progress=False)['new'] == 1  # third failure then success
            assert st.get(r[0].key)['texts'] == _echo(r[0])
    finally: srv.shutdown(); srv.server_close()

def test_requests_spread_over_replicas():
    srvs = [serve(CallableBackend(_echo, 'echo'), port=0, block=False) for _ in range(2)]
    try:
        oa = OpenAIBackend([s.base_url for s in srvs], 'echo', concurrency=4)
        out = oa.generate([Request(f'q{i}', 's', 'echo', _msgs(str(i))) for i in range(8)])
        assert [o['texts'][0].split('#')[0] for o in out] == [str(i) for i in range(8)]
        assert [s.n_chat for s in srvs] == [4, 4]
    finally:
        for s in srvs: s.shutdown(); s.server_close()

def test_401_and_404_fail_clearly_without_leaking_the_key(monkeypatch):
    srv = serve(CallableBackend(_echo, 'echo'), port=0, api_key='right-key', block=False)
    try:
        monkeypatch.setenv('MY_TEACHER_KEY', 'wrong-key-s3cr3t')
        oa = OpenAIBackend(srv.base_url, 'echo', api_key_env='MY_TEACHER_KEY', backoff=0.01)
        with pytest.raises(FatalBackendError, match=r'\(401\).*\$MY_TEACHER_KEY') as e: oa.generate([Request('a', 's', 'echo', _msgs('x'))])
        assert 's3cr3t' not in str(e.value) and 's3cr3t' not in repr(oa)
        monkeypatch.setenv('MY_TEACHER_KEY', 'right-key')
        ok = OpenAIBackend(srv.base_url, 'echo', api_key_env='MY_TEACHER_KEY')
        assert ok.generate([Request('a', 's', 'echo', _msgs('x'))])[0]['texts'] == _echo(Request('a', 's', 'echo', _msgs('x')))
        with pytest.raises(FatalBackendError, match=r"refused model 'other' \(404\)"):
            OpenAIBackend(srv.base_url, 'other', api_key_env='MY_TEACHER_KEY').generate([Request('a', 's', 'x', _msgs('x'))])
    finally: srv.shutdown(); srv.server_close()

def test_hung_teacher_times_out_and_is_retried():
    calls = []
    def slow(r):
        calls.append(1)
        if len(calls) == 1: time.sleep(1.5)  # the first call hangs past the client timeout
        return _echo(r)
    srv = serve(CallableBackend(slow, 'slow'), port=0, block=False)
    try:
        out = OpenAIBackend(srv.base_url, 'slow', timeout=0.5, backoff=0.01).generate([Request('a', 's', 'slow', _msgs('x'))])
        assert out[0]['error'] is None and out[0]['attempts'] >= 2
    finally: srv.shutdown(); srv.server_close()

def test_unreadable_image_is_a_stored_rejection(tmp_path):
    (tmp_path/'bad.png').write_bytes(b'not a png')
    r = Request('a', 's', 'echo', [{"role": "user", "content": [{"type": "image", "image": str(tmp_path/'bad.png')}]}])
    be = OpenAIBackend('http://127.0.0.1:9/v1', 'echo')  # never contacted: the image fails first
    with Store(tmp_path/'g.jsonl') as st:
        assert run_requests(be, [r], st, progress=False)['new'] == 1
        d = st.get(r.key); assert 'unreadable image' in d['error'] and not d['retryable'] and d['texts'] == []

_WORKER = textwrap.dedent("""
    import sys, time
    from vr1_nb.generate import Request, Store, CallableBackend, run_requests
    def slow(r):
        time.sleep(float(sys.argv[2]))
        return [f"{r.id}:{r.seed}:{i}" for i in range(r.n)]
    reqs = [Request(f"rec{i}", "stage", "t", [{"role": "user", "content": str(i)}], sample=i % 3, n=2) for i in range(int(sys.argv[3]))]
    with Store(sys.argv[1]) as st: print(run_requests(CallableBackend(slow, "t", batch_size=1), reqs, st, progress=False))
""")

def _worker(path, delay, n, **kw):
    return subprocess.Popen([sys.executable, '-c', _WORKER, str(path), str(delay), str(n)], cwd=REPO, **kw)

def test_kill9_mid_run_then_resume_equals_uninterrupted(tmp_path):
    n = 40
    _worker(tmp_path/'full.jsonl', 0, n).wait()
    p = _worker(tmp_path/'killed.jsonl', 0.05, n)
    deadline = time.time() + 60
    while time.time() < deadline:
        if (tmp_path/'killed.jsonl').exists() and (tmp_path/'killed.jsonl').read_bytes().count(b'\n') >= 8: break
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    lines_before = (tmp_path/'killed.jsonl').read_bytes().count(b'\n')
    assert 8 <= lines_before < n, "the run must be killed mid-way"
    with open(tmp_path/'killed.jsonl', 'ab') as f: f.write(b'{"key": "rec99|sta')  # a torn last line, as kill -9 can leave
    out = subprocess.run([sys.executable, '-c', _WORKER, str(tmp_path/'killed.jsonl'), '0', str(n)], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert f"'cached': {lines_before}, 'new': {n - lines_before}" in out
    lines = [json.loads(l) for l in (tmp_path/'killed.jsonl').read_text().splitlines()]
    assert len(lines) == len({d['key'] for d in lines}) == n  # no duplicates, nothing lost, no torn line
    strip = lambda d: {k: v for k, v in d.items() if k != 'elapsed'}
    full = {d['key']: strip(d) for d in map(json.loads, (tmp_path/'full.jsonl').read_text().splitlines())}
    assert {d['key']: strip(d) for d in lines} == full

def test_tiny_hf_model_behind_serve(server_proc):
    pytest.importorskip('vr1_nb.models', reason='notebook 05 (tiny model) not exported yet')
    url = server_proc('tiny', fail=1)
    oa = OpenAIBackend(url, 'tiny', backoff=0.01)
    r = Request('a', 's', 'tiny', _msgs('What is shown?', Image.new('RGB', (56, 56), 'blue')), params=dict(max_tokens=6, temperature=1.0), n=2)
    a, b = oa.generate([r])[0], oa.generate([r])[0]
    assert a['error'] is None and len(a['texts']) == 2 and a['texts'] == b['texts']  # same key, same seed, same samples

@pytest.mark.gpu
def test_vllm_backend():
    pytest.importorskip('vllm', reason='vllm extra not installed (pip install "vr1-nb[vllm]" on a CUDA machine)')
    be = VLLMBackend(os.environ.get('VR1_VLLM_MODEL', 'Qwen/Qwen2-VL-2B-Instruct'), max_model_len=4096, limit_mm_per_prompt={'image': 1})
    r = Request('a', 's', be.name, _msgs('What colour is this?', Image.new('RGB', (64, 64), 'red')), params=dict(temperature=0.8, max_tokens=16), n=2)
    a, b = be.generate([r])[0], be.generate([r, Request('b', 's', be.name, _msgs('hi'))])[0]
    assert len(a['texts']) == 2 and a['texts'] == b['texts']  # per-request seed: batching does not change samples

def test_store_skips_corrupt_middle_lines_and_rejects_a_second_writer(tmp_path):
    p = tmp_path/'g.jsonl'; a, b = Request('a', 's', 't'), Request('b', 's', 't')
    with Store(p) as st: st.add(make_response(a, ['x']))
    with open(p, 'ab') as f: f.write(b'[1, 2]\n{"no_key": 1}\n')
    with Store(p) as st:
        st.add(make_response(b, ['y'])); assert st.keys() == [a.key, b.key]
        with pytest.raises(RuntimeError, match='in use'): Store(p)
    assert [d['texts'] for d in Store(p).values()] == [['x'], ['y']]

# --- decoding stated in full: a checkpoint's generation_config.json never decides (issue 15, items 4, 5, 7) -------------

QWEN_DEFAULTS = dict(do_sample=True, top_k=1, repetition_penalty=1.05, temperature=0.1, top_p=0.001)  # Qwen2.5-VL-7B-Instruct's

@pytest.fixture(scope='module')
def qwen_like(tmp_path_factory):
    "The tiny model saved with Qwen2.5-VL-Instruct's sampling defaults in its generation_config.json, then loaded back."
    models = pytest.importorskip('vr1_nb.models', reason='notebook 05 (tiny model) not exported yet')
    m, p = models.get_tiny_model()
    for k, v in QWEN_DEFAULTS.items(): setattr(m.generation_config, k, v)
    path = models.save_model(m, p, tmp_path_factory.mktemp('ckpt')/'qwen-like')
    assert {k: json.loads((path/'generation_config.json').read_text())[k] for k in QWEN_DEFAULTS} == QWEN_DEFAULTS
    return models.load_model(path)

def _applied(model):
    "Record, per `generate` call, the decoding transformers really applies: its resolved config and the processors it built."
    calls, orig = [], model._get_logits_processor
    def spy(generation_config, *a, **kw):
        lp = orig(generation_config, *a, **kw)
        d = dict(temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_tokens=generation_config.max_new_tokens, other=[])
        for x in [w for p in lp for w in (getattr(p, 'warpers', None) or [p])]:
            name = type(x).__name__
            if name == 'RepetitionPenaltyLogitsProcessor': d['repetition_penalty'] = x.penalty
            elif name == 'TemperatureLogitsWarper': d['temperature'] = x.temperature
            elif name == 'TopKLogitsWarper': d['top_k'] = x.top_k
            elif name == 'TopPLogitsWarper': d['top_p'] = x.top_p
            else: d['other'].append(name)
        calls.append(dict(d, do_sample=generation_config.do_sample)); return lp
    model._get_logits_processor = spy
    return calls

def _q(i=0): return _msgs(['What is shown?', 'How many circles are in the picture?', 'Hi'][i % 3], Image.new('RGB', (56, 56), ['blue', 'red', 'green'][i % 3]))

def test_the_checkpoint_defaults_bite_when_a_call_leaves_them_unset(qwen_like):
    "The control: transformers' own sampling asked for temperature 1.0 and top-p 1.0 (HFBackend's old call) gives one text six times."
    import torch
    model, proc = qwen_like
    enc = HFBackend(model, proc)._encode([to_hf_messages(_q())])
    outs = []
    for s in range(6):
        torch.manual_seed(s); outs.append(model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=8, pad_token_id=0)[0].tolist())
    assert len({tuple(o) for o in outs}) == 1

def test_sampled_protocol_gives_distinct_samples_and_greedy_no_penalty_on_every_backend(qwen_like):
    model, proc = qwen_like; calls = _applied(model)
    hf = HFBackend(model, proc, name='qwen-like', max_tokens=8)
    sampled = [Request('q', 'eval', 'qwen-like', _q(), sample=s, params=dict(temperature=1.0)) for s in range(6)]
    greedy = Request('q', 'eval', 'qwen-like', _q(), params={})
    direct = [x['texts'] for x in hf.generate(sampled)]
    assert len({t[0] for t in direct}) == 6
    hf.generate([greedy])
    assert calls[-1] == dict(temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_tokens=8, other=[], do_sample=False)
    srv = serve(hf, port=0, block=False)   # the OpenAI-compatible path to the same model: vr1 serve feeds the HF backend
    try:
        oa, n0 = OpenAIBackend(srv.base_url, 'qwen-like'), len(calls)
        assert [x['texts'] for x in oa.generate(sampled)] == direct   # same params, same seeds, same samples
        oa.generate([greedy])
    finally: srv.shutdown(); srv.server_close()
    key = lambda cs: {json.dumps(c, sort_keys=True) for c in cs}
    assert len(calls) > n0 and key(calls[n0:]) == key(calls[:n0]) and oa._kinds == {0: 'vr1'}   # the served model decoded the same way
    seen = []   # and a plain function sees the same five fields
    CallableBackend(lambda r: seen.append(r.params) or 'x').generate(sampled[:1] + [greedy])
    assert seen == [dict(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0, max_tokens=None), dict(DECODING_OFF, max_tokens=None)]

def _fake_vllm(monkeypatch):
    "A stand-in `vllm` module: `SamplingParams` keeps its arguments (with vLLM's checks on them), `LLM.chat` records its calls."
    import types
    seen = dict(init=[], chat=[])
    class SamplingParams:
        def __init__(self, **kw):
            if kw['top_k'] < -1: raise ValueError(f"top_k must be -1 (disable), or at least 1, got {kw['top_k']}.")
            if kw['temperature'] < 1e-5 and kw['n'] > 1: raise ValueError(f"n must be 1 when using greedy sampling, got {kw['n']}.")
            self.kw = kw
    class LLM:
        def __init__(self, model, **kw): seen['init'].append(dict(model=model, **kw))
        def chat(self, messages, sampling_params, use_tqdm=True):
            seen['chat'].append([s.kw for s in sampling_params])
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"{m[-1]['content'][-1]['text']}#{s.kw['seed']}#{j}")
                                                   for j in range(s.kw['n'])]) for m, s in zip(messages, sampling_params)]
    monkeypatch.setitem(sys.modules, 'vllm', types.SimpleNamespace(SamplingParams=SamplingParams, LLM=LLM))
    return seen

@pytest.mark.parametrize('params', [{}, dict(temperature=0.6, top_p=0.95), dict(temperature=0.01, top_p=0.001, top_k=1), dict(temperature=1.0, repetition_penalty=1.05)])
def test_same_decoding_reaches_every_backend(qwen_like, monkeypatch, params):
    "HF (what transformers applies), OpenAI -> vr1 serve -> HF, vLLM (SamplingParams) and Callable all get the protocol's five fields."
    want = dict(decoding(params, 8))
    model, proc = qwen_like; calls = _applied(model)
    hf = HFBackend(model, proc, name='m', max_tokens=8); r = Request('q', 'eval', 'm', _q(1), params=dict(params, max_tokens=8))
    hf.generate([r])
    srv = serve(hf, port=0, block=False)
    try: OpenAIBackend(srv.base_url, 'm').generate([r])
    finally: srv.shutdown(); srv.server_close()
    for c in calls: assert {k: c[k] for k in want} == pytest.approx(want) and c['other'] == [] and not c['do_sample']
    seen = _fake_vllm(monkeypatch); VLLMBackend('m', max_tokens=8).generate([r])
    sp = seen['chat'][0][0]
    assert dict({k: sp[k] for k in want}, top_k=max(sp['top_k'], 0)) == want and sp['top_k'] != 0 and sp['min_p'] == 0.0 and sp['seed'] == r.seed
    got = []; CallableBackend(lambda q: got.append(q.params) or 'x').generate([r]); assert got == [want]

def test_vllm_backend_submits_every_request_at_once_and_maps_greedy_n(monkeypatch):
    seen = _fake_vllm(monkeypatch)
    be = VLLMBackend('Qwen/Qwen2.5-VL-7B-Instruct', max_tokens=64, tensor_parallel_size=2)
    reqs = [Request(f'q{i}', 'eval', be.name, _msgs(f'p{i}'), params=dict(temperature=0.6, top_p=0.95), n=2) for i in range(10)]
    greedy = Request('g', 'eval', be.name, _msgs('g'), n=3)   # vLLM refuses n > 1 at temperature 0: one completion, copied
    out = list(be.imap(reqs + [greedy]))
    assert len(seen['chat']) == 1 and len(seen['chat'][0]) == 11 and seen['init'] == [dict(model=be.name, tensor_parallel_size=2)]
    assert out[0]['texts'] == [f"p0#{reqs[0].seed}#0", f"p0#{reqs[0].seed}#1"] and out[-1]['texts'] == [f"g#{greedy.seed}#0"] * 3
    assert seen['chat'][0][0] == dict(n=2, seed=reqs[0].seed, temperature=0.6, top_p=0.95, top_k=-1, min_p=0.0, repetition_penalty=1.0, max_tokens=64)
    seen['chat'].clear(); be.batch_size = 4; list(be.imap(reqs))   # a batch size stores every 4 requests, at the price of waits
    assert [len(c) for c in seen['chat']] == [4, 4, 2]

def test_hf_sampled_batches_reproduce_single_requests(qwen_like):
    "Sampled requests batched with others (different lengths, so padding) give what they give alone: one generator per row."
    reqs = [Request(f'r{i}', 's', 't', _q(i), params=dict(temperature=0.8, top_p=0.9, top_k=50), n=2) for i in range(3)]
    alone = [HFBackend(*qwen_like, max_tokens=8, batch_size=2).generate([r])[0]['texts'] for r in reqs]
    batched = [x['texts'] for x in HFBackend(*qwen_like, max_tokens=8, batch_size=6).generate(reqs)]
    assert batched == alone and all(len(set(t)) == 2 for t in alone)

def _raw_chat(url, model, messages):
    import urllib.request
    req = urllib.request.Request(url + '/chat/completions', data=json.dumps(dict(model=model, messages=messages)).encode(),
                                 headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=30) as f: return json.loads(f.read())['choices'][0]['message']

@pytest.mark.parametrize('field', ['reasoning', 'reasoning_content', None])
def test_reasoner_chain_kept_whichever_field_the_server_uses(field):
    chain = "The image shows 3 circles: 1, 2, 3."
    srv = serve(CallableBackend(lambda r: [f"<think>{chain}</think><answer>3</answer>"] * r.n, 'r1'), port=0, reasoning_field=field, block=False)
    try:
        wire = _raw_chat(srv.base_url, 'r1', _msgs('How many circles?'))   # what a server with (or without) a reasoning parser sends
        assert (wire.get(field), wire['content']) == ((chain, '<answer>3</answer>') if field else (None, f"<think>{chain}</think><answer>3</answer>"))
        out = OpenAIBackend(srv.base_url, 'r1').generate([Request('q', 'reasoning', 'r1', _msgs('How many circles?'), params=dict(temperature=0.6), n=2)])[0]
    finally: srv.shutdown(); srv.server_close()
    assert out['chains'] == [chain, chain]
    from vr1_nb.bridge import split_think   # what the bridge reads from the text: the chain, then the answer
    assert split_think(out['texts'][0]) == (chain, '<answer>3</answer>')

def test_vision_r1_bridge_keeps_the_chain_of_a_reasoner_behind_a_reasoning_parser(tmp_path):
    "Modality bridging with a DeepSeek-style reasoner (chain in `reasoning_content`): the cold-start chain is the reasoner's chain."
    from vr1_nb import synth
    from vr1_nb.bridge import vision_r1_bridge
    probs = synth.generate(2, seed=3, split='train', mc_fraction=0.0)
    mllm = CallableBackend(lambda r: "A figure with some objects.", 'mllm')
    def r1(r):
        gold = next(p['answer'] for p in probs if p['question'] in r.messages[-1]['content'][-1]['text'])
        return f"<think>Counting them one by one gives {gold}.</think>The answer is <answer>{gold}</answer>"
    srv = serve(CallableBackend(r1, 'deepseek-r1'), port=0, reasoning_field='reasoning_content', block=False)
    try:
        with Store(tmp_path/'g.jsonl') as st: rows = vision_r1_bridge(probs, mllm, OpenAIBackend(srv.base_url, 'deepseek-r1'), st, progress=False)
    finally: srv.shutdown(); srv.server_close()
    for p, row in zip(probs, rows):
        assert row['verdict'] and f"Counting them one by one gives {p['answer']}." in row['response'].split('</think>')[0]

def test_backend_refuses_decoding_its_server_cannot_honour(monkeypatch, caplog):
    srv = serve(CallableBackend(_echo, 'echo'), port=0, block=False)
    try:
        topk = Request('a', 's', 'echo', _msgs('x'), params=dict(temperature=0.6, top_k=20))
        with pytest.raises(FatalBackendError, match=r"top_k=20: server 'openai' has no top_k"):
            OpenAIBackend(srv.base_url, 'echo', server='openai').generate([topk])
        with pytest.raises(FatalBackendError, match=r"repetition_penalty=1.05"):
            OpenAIBackend(srv.base_url, 'echo', server='openai').generate([Request('b', 's', 'echo', _msgs('x'), params=dict(repetition_penalty=1.05))])
        with pytest.raises(FatalBackendError, match=r"n=2: server 'transformers' ignores `n`"):
            OpenAIBackend(srv.base_url, 'echo', server='transformers').generate([Request('c', 's', 'echo', _msgs('x'), params=dict(temperature=1.0), n=2)])
        assert srv.n_chat == 0   # refused before anything was sent
        monkeypatch.setattr('vr1_nb.generate._OWNERS', {})   # a server the backend does not recognise counts as the official API
        with pytest.raises(FatalBackendError, match="top_k=20"): OpenAIBackend(srv.base_url, 'echo').generate([topk])
        assert 'server not recognised' in caplog.text
        monkeypatch.undo()
        assert OpenAIBackend(srv.base_url, 'echo').generate([topk])[0]['error'] is None   # our serve takes top_k
        with pytest.raises(ValueError, match=r"extra_body sets \['top_k'\]"): OpenAIBackend(srv.base_url, 'echo', extra_body={'top_k': 20})
    finally: srv.shutdown(); srv.server_close()

def _stand_in_vllm(monkeypatch, calls, parallel_state=True):
    "A stand-in `vllm` (optionally without `vllm.distributed.parallel_state`) recording engine and teardown calls."
    import types
    class LLM:
        def __init__(self, model, **kw): calls.append('LLM')
        def __del__(self): calls.append('LLM deleted')
    monkeypatch.setitem(sys.modules, 'vllm', types.SimpleNamespace(LLM=LLM))
    if not parallel_state:   # the import raises ImportError
        monkeypatch.setitem(sys.modules, 'vllm.distributed', None)
        monkeypatch.setitem(sys.modules, 'vllm.distributed.parallel_state', None)
    else:
        ps = types.ModuleType('vllm.distributed.parallel_state')
        ps.destroy_model_parallel = lambda: calls.append('destroy_model_parallel')
        ps.destroy_distributed_environment = lambda: calls.append('destroy_distributed_environment')
        monkeypatch.setitem(sys.modules, 'vllm.distributed', types.SimpleNamespace(parallel_state=ps))
        monkeypatch.setitem(sys.modules, 'vllm.distributed.parallel_state', ps)
    import gc, torch
    collect = gc.collect
    monkeypatch.setattr(gc, 'collect', lambda *a: calls.append('gc.collect') or collect(*a))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'empty_cache', lambda: calls.append('empty_cache'))

def test_vllm_close_follows_vllms_release_recipe(monkeypatch):
    "Delete the LLM, destroy vLLM's parallel state, collect, empty the CUDA cache; once; a closed backend refuses work."
    calls = []
    _stand_in_vllm(monkeypatch, calls)
    with VLLMBackend('m', max_tokens=8) as be: assert be.llm is not None
    assert calls == ['LLM', 'LLM deleted', 'destroy_model_parallel', 'destroy_distributed_environment', 'gc.collect',
                     'empty_cache']
    be.close(); assert len(calls) == 6
    with pytest.raises(FatalBackendError, match='closed'): be.generate([Request('q', 'eval', 'm', _msgs('p'))])

def test_vllm_close_spares_a_process_group_it_did_not_make(monkeypatch):
    "Under `accelerate launch` the process group is the job's: the engine goes, the group stays."
    import torch
    calls = []
    _stand_in_vllm(monkeypatch, calls)
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)
    VLLMBackend('m').close()
    assert calls == ['LLM', 'LLM deleted', 'gc.collect', 'empty_cache']

def test_vllm_close_without_parallel_state_module(monkeypatch):
    calls = []
    _stand_in_vllm(monkeypatch, calls, parallel_state=False)
    VLLMBackend('m').close()
    assert calls == ['LLM', 'LLM deleted', 'gc.collect', 'empty_cache']

def test_every_backend_is_a_context_manager():
    with CallableBackend(lambda q: 'x') as be:
        assert be.generate([Request('q', 't', 'callable', _msgs('p'))])[0]['texts'] == ['x']
    be.close()                                                           # the base class holds nothing: a no-op
