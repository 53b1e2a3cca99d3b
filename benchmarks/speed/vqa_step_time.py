"""Seconds per training step of `vlm fit --config configs/shapes/vqa.yaml` in the checkout it runs in: a callback
times steps 6..25 (the first five warm up) and prints their median and mean. Run it in two checkouts, one after
the other, to compare them (issue 14's before / after):

    python -m benchmarks.speed.vqa_step_time
    cd /tmp/before && PYTHONPATH=/tmp/before python /path/to/vlm/benchmarks/speed/vqa_step_time.py

(The second runs this file by its path, so the other checkout needs no benchmarks package: it imports only
Lightning and that checkout's vlm.)
"""
import argparse
import sys
import time

from lightning.pytorch import Callback


class StepTimer(Callback):
    def __init__(self) -> None:
        self.times = []
        self.start = 0.0

    def on_train_batch_start(self, trainer, module, batch, index) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, index) -> None:
        self.times.append(time.perf_counter() - self.start)

    def on_train_end(self, trainer, module) -> None:
        steady = sorted(self.times[5:])
        print(f'STEPS {len(self.times)} median {steady[len(steady) // 2]:.3f} s mean {sum(steady) / len(steady):.3f} s',
              flush=True)


if __name__ == '__main__':
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    from vlm.cli import main

    sys.argv = ['vlm', 'fit', '--config', 'configs/shapes/vqa.yaml', '--trainer.max_steps', '25',
                '--trainer.limit_val_batches', '0', '--trainer.enable_checkpointing', 'false',
                '--trainer.callbacks+', '__main__.StepTimer', '--trainer.logger.init_args.save_dir', '/tmp/steplog']
    main()
