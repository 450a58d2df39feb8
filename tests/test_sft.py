"SFT contracts: loss on the response only, image tokens never truncated, the loss goes down on a fixed seed."
import pytest
from vr1_nb.synth import red_squares
from vr1_nb.sft import sft_run, sft_dataset, sft_args, load_policy, read_log

def chains(n=12): return red_squares(n, 'c', response=True)

SFT = {'learning_rate': 1e-3, 'per_device_train_batch_size': 4, 'logging_steps': 1, 'use_cpu': True, 'report_to': 'none',
       'save_strategy': 'no', 'gradient_checkpointing': False, 'lr_scheduler_type': 'constant'}

def test_completion_only_loss_and_whole_images(tmp_path):
    from trl import SFTTrainer
    model, proc = load_policy({'path': 'tiny:tiny'})
    tr = SFTTrainer(model=model, args=sft_args({'sft': SFT}, tmp_path), train_dataset=sft_dataset(chains(4)), processing_class=proc)
    b = next(iter(tr.get_train_dataloader()))
    tok = proc.tokenizer
    img_id, start_id = tok.convert_tokens_to_ids('<|image_pad|>'), tok.convert_tokens_to_ids('<|im_start|>')
    n_img = int(b['image_grid_thw'][0].prod()) // proc.image_processor.merge_size**2
    for ids, labels in zip(b['input_ids'], b['labels']):
        assert int((ids == img_id).sum()) == n_img                      # every image token survived (max_length=None)
        kept = tok.decode(ids[labels != -100])
        assert '<answer>' in kept and 'How many' not in kept and '<|image_pad|>' not in kept   # loss on the response only
        last_turn = (ids == start_id).nonzero().max()
        assert (labels[:last_turn] == -100).all()

def test_sft_lowers_loss_fixed_seed(tmp_path):
    cfg = {'seed': 0, 'model': {'path': 'tiny:tiny'}, 'sft': {**SFT, 'max_steps': 6}}
    sft_run(cfg, chains(), tmp_path/'run')
    loss = [r['loss'] for r in read_log(tmp_path/'run') if 'loss' in r]
    assert len(loss) == 6 and loss[-1] < loss[0] - 0.05, loss
