"Run by tests/test_grpo.py::test_two_process_ddp under `accelerate launch --multi_gpu --num_processes 2` (CPU, gloo)."
import hashlib, json, os, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from transformers import TrainerCallback
from vr1_nb.sft import sft_run
from vr1_nb.grpo import grpo_run
from test_grpo import problems
from vr1_nb.rewards import completion_text

OUT = Path(sys.argv[1])

def digest(model):
    h = hashlib.sha256()
    for n, p in sorted(model.named_parameters()): h.update(n.encode()); h.update(p.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()

class Probe(TrainerCallback):
    "Record world size, backend and a hash of the parameters at the start and end of training, per rank."
    def __init__(self, tag): self.tag, self.begin = tag, None
    def on_train_begin(self, args, state, control, model=None, **kw): self.begin = digest(model)
    def on_train_end(self, args, state, control, model=None, **kw):
        import torch.distributed as dist
        r = dict(tag=self.tag, rank=dist.get_rank(), world=dist.get_world_size(), backend=dist.get_backend(),
                 begin=self.begin, end=digest(model), steps=state.global_step)
        (OUT/f"{self.tag}-rank{r['rank']}.json").write_text(json.dumps(r))

common = {'use_cpu': True, 'report_to': 'none', 'logging_steps': 1, 'save_strategy': 'no', 'gradient_checkpointing': False, 'max_steps': 2}
chains = [{**p, 'response': f"<think> I count {p['answer']}. </think><answer>{p['answer']}</answer>"} for p in problems()]
sft_run({'seed': 0, 'model': {'path': 'tiny:tiny'}, 'sft': {**common, 'learning_rate': 1e-3, 'per_device_train_batch_size': 2}},
        chains, OUT/'sft', callbacks=[Probe('sft')])
def length_reward(prompts, completions, **kw):
    "A reward with spread inside every group (the untrained tiny model never earns the format reward), so GRPO has gradients."
    return [len(completion_text(c) or '') / 10 for c in completions]

grpo_run({'seed': 0, 'model': {'path': 'tiny:tiny'}, 'monitor': {'enabled': False},
          'grpo': {**common, 'learning_rate': 1e-4, 'per_device_train_batch_size': 4, 'num_generations': 4, 'max_completion_length': 8, 'beta': 0.04}},
         problems(), OUT/'grpo', callbacks=[Probe('grpo')], reward_funcs=[length_reward])
