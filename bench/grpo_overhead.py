"""Overhead of vr1_nb's GRPO stage runner over plain `trl.GRPOTrainer` on the same tiny configuration.

    OMP_NUM_THREADS=1 python bench/grpo_overhead.py [--steps 12] [--repeats 2] [--out bench/grpo_overhead.json]

Each variant runs in its own subprocess (clean peak RSS), alternating plain/ours to spread machine noise:
  plain     trl.GRPOTrainer built by hand: tiny model, hard_format_reward, the same GRPOConfig
  ours      vr1_nb.grpo.grpo_run with the same config as one stage (monitors off: the same reward work)
  ours+mon  grpo_run with the default weight-0 monitors (accuracy, format, reflection words, samples)
  ours-2st  grpo_run with the same steps split into two PTST stages (a second trainer is built and the model reloaded)
Reported per variant: the median time of one optimizer step measured between consecutive `on_step_end` callbacks
(so it includes everything the runner adds: the beta callback, the log override, the JSONL log), both as wall time and
as this process's CPU time (`time.process_time`, far less sensitive to other processes on a shared machine), the whole
run's wall time (model load, dataset, building every stage's trainer, training, saving) and peak RSS.
Overhead = (ours median step / plain median step) - 1. The first step of every stage (warm-up) is left out.

Measured on the 2-core shared CI box (torch 2.13 CPU, TRL 1.16, 1 thread, tiny preset, 16 steps, batch 8 = 2 prompts x 4):
  --variants plain,ours --repeats 3:  plain 425.0 ms CPU / 1352 ms wall per step, ours 426.1 ms CPU (+0.2%) / 1055 ms wall;
  whole run 31.4 s vs 21.3 s (median of 3), peak RSS 555 vs 554 MiB. Wall-clock medians swung by +-30% between runs
  because other jobs shared the cores; the CPU-time median is the number to compare there.
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

GRPO = dict(learning_rate=1e-5, beta=0.04, loss_type='grpo', per_device_train_batch_size=8, num_generations=4, max_completion_length=16,
            use_cpu=True, report_to='none', logging_steps=1, save_strategy='no', gradient_checkpointing=False, seed=0)

def problems(n=32):
    from vr1_nb.synth import red_squares
    return red_squares(n)

from transformers import TrainerCallback

class StepTimer(TrainerCallback):
    "Wall and CPU time at the end of every optimizer step; deltas within a stage are step times."
    def __init__(self): self.wall, self.cpu, self._last = [], [], None
    def on_train_begin(self, *a, **k): self._last = None
    def on_step_end(self, *a, **k):
        now = (time.perf_counter(), time.process_time())
        if self._last is not None: self.wall.append(now[0] - self._last[0]); self.cpu.append(now[1] - self._last[1])
        self._last = now

def run_plain(steps, out):
    from trl import GRPOConfig, GRPOTrainer
    from vr1_nb.models import get_tiny_model, freeze_vision_tower
    from vr1_nb.grpo import grpo_dataset
    from vr1_nb.rewards import hard_format_reward
    model, proc = get_tiny_model('tiny'); freeze_vision_tower(model)
    timer = StepTimer()
    tr = GRPOTrainer(model=model, reward_funcs=[hard_format_reward], args=GRPOConfig(output_dir=str(out/'ck'), max_steps=steps, **GRPO),
                     train_dataset=grpo_dataset(problems()), processing_class=proc, callbacks=[timer])
    tr.train(); tr.save_model(str(out/'final')); proc.save_pretrained(out/'final')
    return timer

def run_ours(steps, out, monitors=False, two_stages=False):
    from vr1_nb.grpo import grpo_run, read_log
    g = {k: v for k, v in GRPO.items() if k != 'seed'}
    stages = ([{'name': 'a', 'max_steps': steps // 2}, {'name': 'b', 'max_steps': steps - steps // 2}] if two_stages
              else [{'name': 'grpo', 'max_steps': steps}])
    cfg = {'seed': 0, 'model': {'path': 'tiny:tiny'}, 'grpo': g, 'stages': stages,
           'rewards': {'funcs': ['hard_format_reward']}, 'monitor': {'enabled': monitors, 'sample_every': 5}}
    timer = StepTimer()
    grpo_run(cfg, problems(), out/'run', callbacks=[timer])
    return timer

def child(variant, steps):
    import torch; torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    out = Path(tempfile.mkdtemp(prefix=f'bench-{variant}-'))
    t0 = time.perf_counter()
    tm = run_plain(steps, out) if variant == 'plain' else run_ours(steps, out, monitors=variant == 'ours+mon', two_stages=variant == 'ours-2st')
    wall = time.perf_counter() - t0
    print('RESULT ' + json.dumps({'variant': variant, 'step_wall': tm.wall, 'step_cpu': tm.cpu, 'wall_s': wall,
                                  'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=12); ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--variants', default='plain,ours,ours+mon,ours-2st'); ap.add_argument('--out', default=None)
    ap.add_argument('--child', default=None)
    a = ap.parse_args()
    if a.child: return child(a.child, a.steps)
    env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1'), 'HF_HUB_OFFLINE': '1', 'TOKENIZERS_PARALLELISM': 'false'}
    res = {v: [] for v in a.variants.split(',')}
    for rep in range(a.repeats):
        for v in res:
            p = subprocess.run([sys.executable, __file__, '--child', v, '--steps', str(a.steps)], env=env, capture_output=True, text=True)
            line = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
            if p.returncode or not line: sys.exit(f"{v} failed:\n{p.stderr[-3000:]}")
            res[v].append(json.loads(line[0][7:])); print(v, rep, f"{res[v][-1]['wall_s']:.1f}s", flush=True)
    summary = {}
    for v, runs in res.items():
        summary[v] = {'median_step_s': statistics.median(s for r in runs for s in r['step_wall']),
                      'median_step_cpu_s': statistics.median(s for r in runs for s in r['step_cpu']),
                      'whole_run_s': statistics.median(r['wall_s'] for r in runs),
                      'peak_rss_mib': max(r['peak_rss_mib'] for r in runs), 'n_steps': sum(len(r['step_wall']) for r in runs)}
    base = summary.get('plain')
    for v, s in summary.items():
        if base:
            s['step_overhead_pct'] = 100 * (s['median_step_s'] / base['median_step_s'] - 1)
            s['step_cpu_overhead_pct'] = 100 * (s['median_step_cpu_s'] / base['median_step_cpu_s'] - 1)
        print(f"{v:9s} median step {s['median_step_s']*1000:7.1f} ms wall, {s['median_step_cpu_s']*1000:7.1f} ms CPU  "
              f"whole run {s['whole_run_s']:6.1f} s  peak RSS {s['peak_rss_mib']:5.0f} MiB"
              + (f"  overhead {s['step_overhead_pct']:+.1f}% wall, {s['step_cpu_overhead_pct']:+.1f}% CPU" if base else ''))
    info = {'steps': a.steps, 'repeats': a.repeats, 'config': GRPO, 'threads': env['OMP_NUM_THREADS'], 'cpus': os.cpu_count()}
    if a.out: Path(a.out).write_text(json.dumps({'info': info, 'summary': summary}, indent=2))

if __name__ == '__main__': main()
