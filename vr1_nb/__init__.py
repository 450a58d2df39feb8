"""Vision-R1, OpenVLThinker and OThink-MR1 training pipelines (cold-start bridging, SFT, GRPO with PTST and dynamic KL) as a literate nbdev library

Modules:

- `vr1_nb.bridge`: Vision-R1's modality bridging, OpenVLThinker's caption distillation and rejection sampling, and loaders for the released cold-start sets.
- `vr1_nb.evaluate`: The evaluation harness: answers from any backend under a paper's protocol, scored with the benchmark's own convention, written as predictions, scores and plots in a run directory; plus the RL-set loaders and a contamination check.
- `vr1_nb.filter`: Answer verification, format validity, length limits, reflection-keyword statistics and truncation, near-duplicate removal; every rejected record keeps its reason, and a summary table and plot say where the data went.
- `vr1_nb.generate`: One small interface for every teacher (a local Hugging Face model, any OpenAI-compatible server, vLLM's offline engine, or a plain Python function), a resumable append-only store, and `serve`, which puts a local model behind an OpenAI-compatible endpoint.
- `vr1_nb.plan`: A memory, vLLM KV and time planner for the GPU recipes: what each GPU holds in every stage, the vLLM settings each stage needs, time per step, the RL budget beside EasyR1's default, and what a run costs."""

__version__ = "0.0.1"
