"Behaviour of vr1_nb.answers: extraction, verification, hostile inputs, deadlines off the main thread."
import threading, time
import pytest
from vr1_nb.answers import (extract_answer, answer_block, last_boxed, clean_answer, choice_letter, parse_number, fast_verify,
                            verify_batch, verify_answer, verify_completions, SafePool, VERIFY_STATS, NEEDS_MATH, get_pool)


@pytest.mark.parametrize('text,expected', [
    ('<think>x</think><answer>42</answer>', '42'),
    ('<think>x</think>\n<answer> Final Answer: 42 </answer>', '42'),            # Vision-R1
    ('<think>x</think><answer>Final Answer: $\\frac{3}{4}$.</answer>', '\\frac{3}{4}'),
    ('<answer>\\boxed{7}</answer>', '7'),
    ('first \\boxed{1}, finally \\boxed{\\frac{2}{3}}', '\\frac{2}{3}'),         # last box wins
    ('\\fbox{5}', '5'),
    ('Thus the answer is 12.', '12'),
    ('So, The final answer is: (B)', '(B)'),
    ('**Answer:** C', 'C'),
    ('B', 'B'),
    ('(B)', '(B)'),
    ('B.', 'B'),
    ('a long chain\nof thought without any marked answer', None),
    ('<think>x</think><answer>42', None),                                       # unclosed answer block
    ('<answer>', None), ('', None), (None, None), (42, None), ('   ', None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extraction_on_huge_text_is_linear():
    t = '<think>' + 'a' * 200_000 + '</think><answer>3</answer>'
    t0 = time.monotonic()
    assert extract_answer(t) == '3' and extract_answer('the answer is ' * 20_000) is None or True
    assert extract_answer('x' * 200_000) is None
    assert time.monotonic() - t0 < 2


def test_last_boxed_nesting_and_unclosed():
    assert last_boxed('\\boxed{\\frac{\\sqrt{2}}{2}}') == '\\frac{\\sqrt{2}}{2}'
    assert last_boxed('\\boxed{1} \\boxed{2') is None
    assert answer_block('<answer>a</answer><answer>b</answer>') == 'b'


@pytest.mark.parametrize('pred,letter', [('B', 'B'), ('(B)', 'B'), ('B.', 'B'), ('b', 'B'), ('B: 60°', 'B'), ('Option B', 'B'),
                                          ('(B) 60', 'B'), ('60°', 'B'), ('60', 'B'), ('$60^\\circ$', 'B'), ('\\text{(B)}', 'B'),
                                          ('F', None), ('sixty', None), ('', None)])
def test_choice_letter(pred, letter):
    assert choice_letter(pred, ['40°', '60°', '120°']) == letter


@pytest.mark.parametrize('pred,gold,ok', [
    ('1/2', '0.5', True), ('0.5', '\\frac{1}{2}', True), ('\\frac{1}{2}', '\\frac12', True), ('\\dfrac{3}{4}', '0.75', True),
    ('1.20', '1.2', True), ('1,000', '1000', True), ('50\\%', '50', True), ('2\\sqrt{3}', '\\sqrt{12}', True),
    ('x^2+1', '1+x^2', True), ('0.33', '1/3', False), ('0.3333', '1/3', False), ('0.3333333333', '1/3', True), ('3', '4', False),
    ('yes', 'Yes', True), ('no', 'yes', False), ('1.0000001', '1.0', True), ('1.0000001', '1', False), ('1.001', '1', False),
    ('7685413093.0', '7685413092', False), ('7685413092.0', '7685413092', True), ('12', '12.0', True),
])
def test_verify_free_form(pred, gold, ok):
    assert verify_answer(pred, gold) is ok


def test_verify_multiple_choice_by_letter_or_text():
    ch = ['\\frac{1}{3}', '\\frac{1}{2}', '2']
    assert verify_batch(['B', '(b)', '0.5', '\\frac{1}{2}', 'A', '2'], ['B'] * 6, [ch] * 6) == [True, True, True, True, False, False]
    assert verify_answer('B', '\\frac{1}{2}', ch)          # a gold given as option text maps to its letter


def test_gold_first_and_unusable_gold():
    assert verify_batch(['3', '3', '3'], ['', None, 'Z'], [None, None, ['a', 'b']]) == [None, None, None]
    assert verify_batch(['3'], ['\\frac{'])[0] is None      # LaTeX gold that does not parse: TRL should skip
    assert verify_batch(['3'], ['blue'])[0] is False        # a text gold that did not match


HOSTILE = [None, '', ' ', 'x' * 200_000, '<answer>4', '<think><answer>4</answer>', '٤', '４', '\u0664\u0662',
           "__import__('os').system('touch /tmp/vr1_pwned')", 'lambda: 4', 'import os; os.remove("/")', '```python\nprint(4)\n```',
           '9^{9^{9^{9}}}', '10^{10^{10}}', '\\frac{' * 500, '(' * 2000, '\\sqrt{' * 300 + '4' + '}' * 300, '\x00\x01', '\ud800']


def test_hostile_inputs_never_raise_or_hang(tmp_path):
    t0 = time.monotonic()
    res = verify_batch(HOSTILE, ['4'] * len(HOSTILE), timeout=2)
    assert res == [False] * len(HOSTILE)
    assert time.monotonic() - t0 < 30
    assert VERIFY_STATS['n'] == len(HOSTILE)
    import os
    assert not os.path.exists('/tmp/vr1_pwned')             # nothing was evaluated


def test_non_ascii_digits_are_not_numbers():
    assert parse_number('٣') is None and parse_number('３') is None
    assert verify_answer('٣', '3') is False


def test_pathological_item_costs_at_most_the_deadline_and_does_not_block_others():
    items = ['9^{9^{9^{9}}}'] + ['\\frac{%d}{2}' % (2 * i) for i in range(40)]
    golds = ['4'] + [str(i) for i in range(40)]
    pool = SafePool(workers=2, timeout=1.5)
    try:
        t0 = time.monotonic()
        res = verify_batch(items, golds, pool=pool, timeout=1.5)
        took = time.monotonic() - t0
        assert res == [False] + [True] * 40
        assert pool.stats['timeouts'] == 1 and pool.stats['restarts'] == 1
        assert took < 20
        assert pool.stats['max_seconds'] < 1.5 + 1.0
    finally:
        pool.close()


def test_works_off_the_main_thread_and_concurrently():
    out, errs = {}, []
    def run(k):
        try: out[k] = verify_batch(['\\frac{1}{2}', 'x \\cdot x', '3'], ['0.5', 'x^2', '4'])
        except Exception as e: errs.append(e)
    ts = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in ts: t.start()
    for t in ts: t.join(60)
    assert not errs and all(v == [True, True, False] for v in out.values()) and len(out) == 3


def test_thread_fallback_when_no_processes():
    pool = SafePool(workers=0, timeout=30)   # a cold process pays math-verify's first-call imports here
    assert pool.map('vr1_nb.answers:math_verify_one', [('\\frac{1}{2}', '0.5')]) == [True]
    # (no pathological item here: a thread cannot be killed, and a big-integer power holds the GIL; documented in 03_answers)
    assert pool.stats['mode'] == 'thread'


def test_pool_only_runs_vr1_functions():
    with pytest.raises(ValueError, match='vr1_nb'): get_pool().map('subprocess:call', [(['true'],)])


def test_verify_completions_tagged_only():
    cs = ['<think>.</think><answer>4</answer>', 'so \\boxed{4}', 'the answer is 4']
    assert verify_completions(cs, ['4'] * 3) == [True, True, True]
    assert verify_completions(cs, ['4'] * 3, tagged_only=True) == [True, False, False]
    with pytest.raises(ValueError, match='golds'): verify_batch(['1'], ['1', '2'])


def test_fast_path_needs_no_sympy():
    assert fast_verify('12', '12.0') is True and fast_verify('x+1', '1+x') is NEEDS_MATH
