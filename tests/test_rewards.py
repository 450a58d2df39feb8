"vr1_nb.rewards: every reward of issue 3, conversational and string completions, malformed and hostile inputs, logging."
import threading
import pytest
from vr1_nb.rewards import (AccuracyReward, HardFormatReward, OpenVLThinkerAccuracyReward, format_reward, openvlthinker_format_reward, accuracy_reward, hard_format_reward, format_accuracy_reward,
                            openvlthinker_accuracy_reward, FormatReward, format_error, completion_text, REWARD_STATS, ThinkAnswerFormat,
                            Layout, LAYOUTS, Parsed, get_layout, reflection_keywords, REFLECTION_KEYWORD_SETS)

GOOD = '<think>2+2 is 4</think>\n<answer>4</answer>'
conv = lambda t: [{'role': 'assistant', 'content': t}]


@pytest.mark.parametrize('text,ok', [
    (GOOD, True), ('  <think></think> <answer>4</answer>  \n', True),        # whitespace around/between; empty think allowed
    ('<think>a</think><answer>4</answer>trailing', False),                    # nothing after
    ('prefix<think>a</think><answer>4</answer>', False),
    ('<think>a</think>summary<answer>4</answer>', False),                     # R1 layout: nothing between
    ('<think>a</think><answer></answer>', False), ('<think>a</think><answer>  </answer>', False),   # empty answer
    ('<think>a<think>b</think></think><answer>4</answer>', False),            # nested
    ('<think>a</think><answer>4</answer><answer>5</answer>', False),          # repeated
    ('<answer>4</answer><think>a</think>', False),                            # order
    ('<think>a</think><answer>4', False), ('<think>a<answer>4</answer>', False),               # unclosed
    ('<think><answer>4</answer></think>', False), ('', False), (None, False), ('x' * 200_000, False),
])
def test_format_reward_r1(text, ok):
    assert format_reward(None, [text]) == [float(ok)]
    assert format_reward(None, [conv(text)]) == [float(ok)]


def test_openvlthinker_format_allows_summary():
    t = '<think>a</think>\nIn short, 4.\n<answer>4</answer>'
    assert openvlthinker_format_reward(None, [t, GOOD, t + ' x']) == [1.0, 1.0, 0.0]
    assert format_reward(None, [t]) == [0.0]
    assert FormatReward(ThinkAnswerFormat('mine', summary=True))(None, [t]) == [1.0]
    with pytest.raises(ValueError, match='unknown layout'): FormatReward('nope')


def test_format_stats_logged():
    got = {}
    format_reward(None, [GOOD, 'junk', None, '<think>a</think><answer>4</answer> x'], log_metric=got.__setitem__)
    st = REWARD_STATS['format_reward']
    assert st['n'] == 4 and st['malformed_frac'] == 0.75 and st['reasons'] == {'missing_tags': 1, 'empty': 1, 'text_after': 1}
    assert got['format_reward/malformed_frac'] == 0.75


def test_accuracy_reward_reads_only_the_answer_block():
    cs = ['<think>\\boxed{4}</think><answer>5</answer>', 'so \\boxed{4}', 'the answer is 4', '<think>.</think><answer>4</answer>',
          '<think>.</think><answer> Final Answer: 4 </answer>', '<think>.</think><answer>\\boxed{4}</answer>']
    assert accuracy_reward(None, cs, answer=['4'] * 6) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert accuracy_reward(None, [conv(c) for c in cs], answer=['4'] * 6) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_accuracy_reward_math_and_choices():
    cs = ['<answer>\\frac{1}{2}</answer>', '<answer>0.5</answer>', '<answer>(B)</answer>', '<answer>60°</answer>', '<answer>A</answer>']
    golds = ['0.5', '\\frac{1}{2}', 'B', 'B', 'B']
    ch = [None, None, ['30°', '60°'], ['30°', '60°'], ['30°', '60°']]
    assert accuracy_reward(None, cs, answer=golds, choices=ch) == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_accuracy_reward_none_only_for_unusable_gold():
    r = accuracy_reward(None, ['<answer>4</answer>'] * 4, answer=['', '\\frac{', '4', 'C'], choices=[None, None, None, ['x', 'y']])
    assert r == [None, None, 1.0, None]
    assert REWARD_STATS['accuracy_reward']['skipped'] == 3


def test_accuracy_reward_needs_answer_column():
    with pytest.raises(ValueError, match="'answer'"): accuracy_reward(None, ['<answer>4</answer>'], solution=['4'])
    with pytest.raises(ValueError, match='completions'): accuracy_reward(None, ['<answer>4</answer>'], answer=['4', '5'])


HOSTILE = [None, '', 'x' * 200_000, '<think>' + 'y' * 200_000 + '</think><answer>' + '7' * 100_000 + '</answer>',
           '<think>a</think><answer>4', '<answer><answer>4</answer>', '<think>.</think><answer>٤</answer>', '<think>.</think><answer>４</answer>',
           "<think>.</think><answer>__import__('os').system('touch /tmp/vr1_reward_pwned')</answer>",
           '<think>.</think><answer>```python\nprint(4)\n```</answer>', '<think>.</think><answer>9^{9^{9^{9}}}</answer>',
           '<think>.</think><answer>' + '\\frac{' * 400 + '</answer>', [], [{'role': 'assistant'}], 12345]


WELL_FORMED = [0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0]   # the hostile items that do follow the format


@pytest.mark.parametrize('fn', [AccuracyReward(timeout=1.5), HardFormatReward(timeout=1.5), OpenVLThinkerAccuracyReward(timeout=1.5)])
def test_hostile_inputs_give_zero_never_raise(fn):
    r = fn(None, HOSTILE, answer=['4'] * len(HOSTILE))
    assert r == [0.0] * len(HOSTILE)
    import os
    assert not os.path.exists('/tmp/vr1_reward_pwned')


def test_hostile_inputs_format_rewards():
    assert format_reward(None, HOSTILE) == [float(x) for x in WELL_FORMED]
    assert format_accuracy_reward(1.0, timeout=1.5)(None, HOSTILE, answer=['4'] * len(HOSTILE)) == [float(x) for x in WELL_FORMED]


def test_hard_format_reward_is_the_product():
    cs = [GOOD, GOOD + ' ps', '<think>a</think><answer>5</answer>', 'the answer is 4']
    assert hard_format_reward(None, cs, answer=['4'] * 4) == [1.0, 0.0, 0.0, 0.0]
    assert REWARD_STATS['hard_format_reward']['correct_but_malformed'] == 1
    assert hard_format_reward(None, [GOOD], answer=['']) == [None]


def test_format_accuracy_reward_alpha():
    cs = [GOOD, '<think>a</think><answer>5</answer>', '4', '<answer>4</answer>']
    assert format_accuracy_reward(1.0)(None, cs, answer=['4'] * 4) == [2.0, 1.0, 0.0, 1.0]
    assert format_accuracy_reward(0.25)(None, cs, answer=['4'] * 4) == [1.25, 0.25, 0.0, 1.0]
    assert REWARD_STATS['format_accuracy_reward']['accuracy'] == 0.5


def test_openvlthinker_accuracy_halved_without_summary():
    # r1v.py@edb87c3 halves only when '</think>' and '<answer>' are both there and only whitespace lies between them
    cs = ['<think>a</think>So it is 4.<answer>4</answer>', GOOD, '<answer>4</answer>', '<think>a</think>Sum.<answer>5</answer>',
          '<think>a</think> \n <answer>4</answer> trailing', 'So 4. </think><answer>4</answer>']
    assert openvlthinker_accuracy_reward(None, cs, answer=['4'] * 6) == [1.0, 0.5, 1.0, 0.0, 0.5, 0.5]
    assert REWARD_STATS['openvlthinker_accuracy_reward']['empty_summary_frac'] == 0.5


def test_rewards_off_the_main_thread():
    out, errs = [], []
    def run():
        try: out.append(accuracy_reward(None, [GOOD, '<answer>\\frac{8}{2}</answer>'], answer=['4', '4']))
        except Exception as e: errs.append(e)
    t = threading.Thread(target=run); t.start(); t.join(60)
    assert not errs and out == [[1.0, 1.0]]


def test_trl_signature_and_names():
    import inspect, pickle
    for f in (format_reward, accuracy_reward, hard_format_reward, format_accuracy_reward(), openvlthinker_accuracy_reward):
        assert isinstance(f.__name__, str) and 'completions' in inspect.signature(f.__call__).parameters
        assert pickle.loads(pickle.dumps(f)).__name__ == f.__name__      # TRL's async worker pickles reward funcs
    # the keyword call TRL makes, with its extra kwargs
    r = accuracy_reward(prompts=['p'], completions=[conv(GOOD)], completion_ids=[[1]], answer=['4'], trainer_state=None,
                        log_extra=lambda k, v: None, log_metric=lambda k, v: None)
    assert r == [1.0]


def test_completion_text_shapes():
    assert completion_text([{'role': 'assistant', 'content': [{'type': 'text', 'text': 'a'}, {'type': 'image'}]}]) == 'a'
    assert format_error('<think>a</think><answer>b</answer>') is None


# -- answer layouts: written and read alike ------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_every_layout_reads_back_what_it_writes(name):
    lay = LAYOUTS[name]
    for think, answer, summary in [('2 + 2 = 4.', '4', 'So 4.'), ('', 'B', None), ('a\n\nb', '\\frac{1}{2}', '  '),
                                   ('x' * 5000, 'yes', 'Short.\nTwo lines.')]:
        text = lay.write(think, answer, summary)
        want_summary = summary.strip() if lay.summary and summary and summary.strip() else ''
        assert lay.parse(text) == Parsed(think.strip(), want_summary, answer, None)
        assert format_error(text, name) is None and FormatReward(name)(None, [text]) == [1.0]


def test_layouts_differ_where_the_papers_differ():
    r1, vr1, ovt = (get_layout(n) for n in ('r1', 'vision-r1', 'openvlthinker'))
    assert vr1.write('t', '4').endswith('</think>\n<answer> Final Answer:4 </answer>')   # Vision-R1's eval regex reads it
    import re
    assert re.search(r'<answer> Final Answer:(.*?) </answer>', vr1.write('t', '4'), re.DOTALL).group(1).strip() == '4'
    assert vr1.parse(r1.write('t', '4')).error == 'no_answer_prefix'
    assert vr1.parse('<think>t</think><answer> Final Answer: </answer>').error == 'empty_answer'
    assert r1.parse(ovt.write('t', '4', 'So 4.')).error == 'text_between'
    assert ovt.parse(r1.write('t', '4')) == Parsed('t', '', '4', None)        # the summary is allowed, not required
    assert get_layout(ovt) is ovt and ThinkAnswerFormat is Layout
    with pytest.raises(ValueError, match="unknown layout 'R1'"): get_layout('R1')


def test_vision_r1_answers_are_read_back_as_the_answer():
    vr1 = LAYOUTS['vision-r1']
    cs = [vr1.write('t', a) for a in ('4', '\\frac{1}{2}', 'B', '3.5')] + ['<think>t</think><answer> Final Answer:4 </answer>']
    golds, ch = ['4', '0.5', 'B', '3.5', '4'], [None, None, ['1', '2'], None, None]
    assert accuracy_reward(None, cs, answer=golds, choices=ch) == [1.0] * 5
    assert HardFormatReward('vision-r1')(None, cs, answer=golds, choices=ch) == [1.0] * 5
    assert HardFormatReward('vision-r1')(None, [LAYOUTS['r1'].write('t', '4')], answer=['4']) == [0.0]   # right, wrong layout


# The SFT-Iter1 output printed in OpenVLThinker's report, §4.2 (paper/OpenVLThinker_report.pdf@93ead4a; line breaks inside
# paragraphs are the PDF's, as extracted): a summary between </think> and <answer>.
OVT_PAPER = ("<think>\nOkay, so I need to figure out the length of the line in the image using the ruler provided. Let me\n"
             "start by understanding the image. The image shows a wooden ruler with measurements from 0\n"
             "cm to 10 cm. The line starts at the 1 cm mark and ends just before the 5 cm mark.\n"
             "Hmm, so the line starts at 1 cm and goes up to just before 5 cm. That means the line is 4 cm long\n"
             "because from 1 cm to 5 cm is 4 cm. But wait, the question is asking for the length to the nearest\n"
             "centimeter. Since the line ends just before 5 cm, it’s not exactly 4 cm, but it’s close. So, rounding\n"
             "to the nearest whole number, it would be 4 cm.\n</think>\n"
             "The line starts at 1 cm and ends just before 5 cm, which is 4 cm long. Rounding to the nearest\n"
             "centimeter gives 4 cm.\n<answer>4</answer>")


def test_openvlthinker_released_layout_passes_its_format_and_reward():
    assert openvlthinker_format_reward(None, [OVT_PAPER, [{'role': 'assistant', 'content': OVT_PAPER}]]) == [1.0, 1.0]
    assert format_reward(None, [OVT_PAPER]) == [0.0] and REWARD_STATS['format_reward']['reasons'] == {'text_between': 1}
    assert openvlthinker_accuracy_reward(None, [OVT_PAPER], answer=['4']) == [1.0]
    p = LAYOUTS['openvlthinker'].parse(OVT_PAPER)
    assert p.answer == '4' and p.summary.startswith('The line starts') and p.think.endswith('it would be 4 cm.')


def test_one_reflection_keyword_list():
    assert reflection_keywords() == ['Wait', 'But wait', 'But the question']        # OpenVLThinker §4.2
    assert reflection_keywords('vision-r1') == ['Wait', 'Hmm', 'Mistake', 'Alternatively', 'Check']   # Vision-R1 Table 4
    old_bridge = ["But wait", "Wait", "Hmm", "Alternatively", "Let me double-check", "Double-check", "Let me check",
                  "Let me verify", "Let me re-check", "Let me recheck", "On second thought", "Hold on", "Check"]
    old_monitor = ['wait', 'hmm', 'however', 'alternatively', 'let me check', 'check again', 're-check', 'recheck',
                   'double-check', 'verify', 'mistake']
    ext = reflection_keywords('extended')
    assert set(old_bridge) <= set(ext) and {w.lower() for w in old_monitor} <= {w.lower() for w in ext}
    assert reflection_keywords(('Hmm',)) == ['Hmm'] and reflection_keywords() is not reflection_keywords()
    with pytest.raises(ValueError, match='unknown reflection keyword set'): reflection_keywords('paper')
