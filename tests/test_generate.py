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
