"""Each paper's SFT target, RL prompt and evaluation prompt, built by the library from one record and its preset, rendered
through the real Qwen2-VL / Qwen2.5-VL chat template (default system turn included), against strings copied from the
papers' sources. The expected strings are literal here, never read from the presets."""
import pytest
from PIL import Image
from vr1_nb.core import load_config, stage_prompt, to_prompt, to_completion
from vr1_nb.evaluate import eval_messages, resolve_protocol
from vr1_nb.models import load_processor, tiny_checkpoint
from vr1_nb.rewards import LAYOUTS

# Qwen/Qwen2-VL-7B-Instruct and Qwen/Qwen2.5-VL-7B-Instruct chat_template.json: the default system turn and the image marker
SYS = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
IMG = '<|vision_start|><|image_pad|><|vision_end|>'
Q = 'How many red squares are there?'
REC = dict(id='r1', images=[Image.new('RGB', (56, 56), 'white')], question=Q, answer='3', answer_type='integer',
           metadata={'query': 'Hint: Please answer the question requiring an integer answer.\nQuestion: ' + Q})

@pytest.fixture(scope='module')
def proc():
    return load_processor(tiny_checkpoint('qwen2_5_vl'))

def render(proc, msgs, gen=True): return proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

def stages(name):
    "SFT example (prompt + target), RL prompt and evaluation prompt of one record under preset `name`, rendered."
    cfg = load_config(name)
    return cfg, stage_prompt(cfg, 'sft'), stage_prompt(cfg, 'rl'), resolve_protocol(cfg['eval'])

def test_vision_r1(proc):
    cfg, sft, rl, ev = stages('vision-r1-7b')
    target = LAYOUTS[cfg['bridge']['layout']].write('Three red squares.', '3')
    # evaluation/evalscope/vlmeval/inference.py@c061681: "Vision-R1 has output format <think>*</think> <answer> Final Answer:* </answer>"
    assert target.endswith('<answer> Final Answer:3 </answer>') and target.startswith('<think>')
    # Vision-R1-cold (LLaMA-Factory sharegpt): user turn "<image>\n" + question, no instruction, template's default system
    assert render(proc, to_prompt(REC, sft) + to_completion(target), gen=False) == (
        SYS + '<|im_start|>user\n' + IMG + Q + '<|im_end|>\n<|im_start|>assistant\n' + target + '<|im_end|>\n')
    # RL: no system prompt (paper §3), no published instruction (inferred: the question alone)
    assert render(proc, to_prompt(REC, rl)) == SYS + '<|im_start|>user\n' + IMG + Q + '<|im_end|>\n<|im_start|>assistant\n'
    # evaluation: the benchmark's own question (VLMEvalKit's MathVista prompt is its query), no instruction
    assert render(proc, eval_messages(REC, ev['instruction'], ev['prompt'])) == (
        SYS + '<|im_start|>user\n' + IMG + REC['metadata']['query'] + '<|im_end|>\n<|im_start|>assistant\n')

def test_openvlthinker(proc):
    cfg, sft, rl, ev = stages('openvlthinker-7b')
    target = LAYOUTS[cfg['bridge']['layout']].write('Three red squares.', '3', summary='There are 3 red squares.')
    # train/easyr1/examples/reward_function/r1v.py@edb87c3 example: "</think>\n\n<summary> \n\n<answer>15</answer>"
    assert target == '<think>\nThree red squares.\n</think>\n\nThere are 3 red squares.\n\n<answer>3</answer>'
    # train/llama-factory/README.md@78ce312: {"content": "<image>User instruction", "role": "user"}
    assert render(proc, to_prompt(REC, sft) + to_completion(target), gen=False) == (
        SYS + '<|im_start|>user\n' + IMG + Q + '<|im_end|>\n<|im_start|>assistant\n' + target + '<|im_end|>\n')
    # train/easyr1/examples/format_prompt/math_format.jinja@6997b47: "{{ content | trim }} You FIRST think about ..."
    assert render(proc, to_prompt(REC, rl)) == (SYS + '<|im_start|>user\n' + IMG + Q + ' You FIRST think about the reasoning process '
                                                'as an internal monologue and then provide the final answer.<|im_end|>\n<|im_start|>assistant\n')
    # evaluation/eval_openvlthinker.py@6997b47: [image, {"type": "text", "text": instruction}] with MathVista's `query`
    assert render(proc, eval_messages(REC, ev['instruction'], ev['prompt'])) == (
        SYS + '<|im_start|>user\n' + IMG + REC['metadata']['query'] + '<|im_end|>\n<|im_start|>assistant\n')

def test_othink_mr1_follows_r1v(proc):
    cfg, sft, rl, ev = stages('othink-mr1-2b')
    # Deep-Agent/R1-V@bbbbe3d src/r1-v/src/open_r1/sft.py: SYSTEM_PROMPT, then the user turn [text, image]
    r1v_system = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant "
                  "first thinks about the reasoning process in the mind and then provides the user with the answer. The reasoning "
                  "process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, i.e., "
                  "<think> reasoning process here </think><answer> answer here </answer>")
    target = LAYOUTS['r1'].write('Three red squares.', '3')
    assert render(proc, to_prompt(REC, sft) + to_completion(target), gen=False) == (
        '<|im_start|>system\n' + r1v_system + '<|im_end|>\n<|im_start|>user\n' + Q + IMG + '<|im_end|>\n<|im_start|>assistant\n'
        + target + '<|im_end|>\n')
    # src/r1-v/src/open_r1/grpo.py: QUESTION_TEMPLATE = "{Question}  Output the thinking process in ... tags." (two spaces)
    assert render(proc, to_prompt(REC, rl)) == (SYS + '<|im_start|>user\n' + IMG + Q + '  Output the thinking process in <think> '
                                                '</think> and final answer (number) in <answer> </answer> tags.<|im_end|>\n<|im_start|>assistant\n')
    # src/eval/test_qwen2vl_counting_superclevr.py: "{Question} First output the thinking process in ... tags."
    assert render(proc, eval_messages(REC, ev['instruction'], ev['prompt'])) == (
        SYS + '<|im_start|>user\n' + IMG + Q + ' First output the thinking process in <think> </think> and final answer (number) '
        'in <answer> </answer> tags.<|im_end|>\n<|im_start|>assistant\n')
