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


# Issue 16: the three extraction bugs third-party suites exposed (math-verify's cases, MathRuler's MATH-500 pairs, TRL's tests).
@pytest.mark.parametrize('completion,gold,ok', [
    ('<answer>\\$18</answer>', '18', True),                   # an escaped dollar is a currency sign, not a math delimiter
    ('<answer>\\$18</answer>', '19', False),
    ('<answer>18</answer>', '\\$18', True),                   # MATH-500 golds written \$18, \$32,\!348
    ('<answer>32348</answer>', '\\$32,\\!348', True),
    ('<answer>$18</answer>', '18', True),
    ('The answer is 12, not 13.', '12', True),               # the answer after a phrase ends with its sentence
    ('The answer is 13, not 12.', '12', False),
    ('Final Answer: The final answer is $\\pi$. I hope it is correct.', '\\pi', True),   # the MATH template
    ('Final answer is 7', '7', True),                        # no "the", no colon
    ('so \\boxed{200} and \\boxed{255}. Final Answer: The final answer is $10,455$. I hope it is correct.', '10455', True),
])
def test_issue16_extraction_bugs(completion, gold, ok):
    assert verify_completions([completion], [gold]) == [ok]


def test_escaped_dollar_gold_is_scored_not_skipped():
    "A gold that does not parse gives None (TRL skips the sample); an escaped-dollar gold must parse."
    assert verify_batch(['\\frac{36}{2}', '7'], ['\\$18', '\\$32,\\!348']) == [True, False]


# math-verify's own test cases (huggingface/Math-Verify@5d148cf tests/, 277 cases in ../shared/benchmarks/answers), run through our
# extraction and verification. Every case where we differ from math-verify is listed here with the reason (03_answers has the table);
# anything else that differs fails the test.
MV_DESIGN = {
    'decimal comma': "a comma is never a decimal separator for us ('1,22' is a list or a typo, '1,000' is a thousand); math-verify reads '1000,99' as 1000.99",
    'unmarked answer': "the answer is not marked (no <answer>, \\\\boxed, answer phrase, nor a one-line reply of at most 64 characters); we read no 'last number or LaTeX span' in free text, math-verify does",
    'last box only': "several boxed answers: we read only the last \\\\boxed{} (one final answer), math-verify joins all boxes into a set",
    'precision': "the case passes a looser float precision (4 or 2 decimals); our tolerance is fixed (relative 1e-6)",
    'set relations': "the case turns on math-verify's allow_set_relation_comp; we compare with its default (off)",
    'strict': "the case turns off math-verify's strict mode (f(x) = f(y)); we verify strictly",
    'letter anywhere': "math-verify takes a lone capital letter anywhere in the text ('Because B is valid'); we take a letter only as the stated answer",
}
MV_DISAGREE = {
    **{('test_number_extraction', i): 'decimal comma' for i in (5, 6, 17)},
    **{('test_latex_notation', i): 'unmarked answer' for i in (7, 8)},
    **{('test_matrix_extraction', i): 'unmarked answer' for i in (1, 2, 3, 4, 5, 6)},
    ('test_complex_math_expressions', 5): 'unmarked answer',
    **{('test_math_extraction_edge_cases', i): 'unmarked answer' for i in (0, 1, 2)},
    ('test_math_extraction_additional_cases', 8): 'unmarked answer',
    ('test_numina_cases', 3): 'unmarked answer',
    ('test_math_extraction_additional_cases', 28): 'last box only',
    ('test_numina_cases', 12): 'last box only',
    **{('test_open_thoughts', i): 'last box only' for i in (12, 13, 14, 16, 18, 19, 23, 24, 25, 26)},
    ('test_precision', 0): 'precision', ('test_complex_math_expressions', 7): 'precision', ('test_complex_math_expressions', 13): 'precision',
    ('test_set_rel_assymetry', 2): 'set relations',
    ('test_strict_variable_comparison', 1): 'strict',
    ('string_extraction', 6): 'letter anywhere',
}


def _math_verify_cases():
    import json
    from pathlib import Path
    f = Path(__file__).resolve().parents[2] / 'shared' / 'benchmarks' / 'answers' / 'math_verify_cases.jsonl'
    if not f.exists(): pytest.skip(f'{f} not present')
    return [json.loads(l) for l in f.read_text().splitlines() if l.strip()]


def test_math_verify_cases_disagreements_are_the_documented_ones():
    cases = _math_verify_cases()
    assert len(cases) == 277
    num = [c for c in cases if c['kind'] != 'string_extraction']
    ours = verify_completions([c['pred'] for c in num], [c['gold'] for c in num], timeout=10)
    got = {(c['test'], c['idx']) for c, o in zip(num, ours) if bool(o) != bool(c['expected'])}
    for c in cases:
        if c['kind'] == 'string_extraction':   # multiple-choice letters; math-verify's expected is [lower, upper] or []
            exp = c['expected'][1] if c['expected'] else None
            choices = [chr(65 + i) for i in range(max(5, ord(exp) - 64 if exp else 0))]
            if choice_letter(extract_answer(c['pred']) or '', choices) != exp: got.add(('string_extraction', c['idx']))
    assert got == set(MV_DISAGREE), (sorted(got - set(MV_DISAGREE)), sorted(set(MV_DISAGREE) - got))
    assert set(MV_DISAGREE.values()) == set(MV_DESIGN)
    print(f"math-verify cases: agree on {len(cases) - len(got)} of {len(cases)}")
