"""Learning curves from `vlm fit` run folders (`vlm.evaluation.learning_curves` and its command line,
`python -m benchmarks.experiments.learning_curves`), and the WallClock callback that gives them their time axis."""
import subprocess
import sys
import time
from pathlib import Path

from vlm.callbacks import WallClock
from vlm.evaluation.learning_curves import read_curve

REPO = Path(__file__).resolve().parents[1]


def _run(folder, batch, rows):
    folder.mkdir(parents=True)
    (folder / 'config.yaml').write_text(f'data:\n  init_args:\n    batch_size: {batch}\n')
    lines = ['epoch,step,time/wall_s,train/loss,val/vqa_acc']
    lines += [f'0,{step},{wall},{loss},{value}' for step, wall, loss, value in rows]
    (folder / 'metrics.csv').write_text('\n'.join(lines) + '\n')
    return folder


def test_curves_read_images_seen_wall_time_and_values_and_plot(tmp_path):
    run = _run(tmp_path / 'a', 8, [(9, 30.0, 0.5, ''), (99, 300.0, '', 0.4), (199, 600.0, '', 0.6)])
    assert read_curve(run, 'val/vqa_acc') == [(800, 300.0, 0.4), (1600, 600.0, 0.6)]
    result = subprocess.run([sys.executable, '-m', 'benchmarks.experiments.learning_curves', '--run', f'scratch={run}',
                             '--metric', 'val/vqa_acc', '--out', str(tmp_path / 'curves.png')],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'curves.png').read_bytes()[:4] == b'\x89PNG'
    assert '| scratch | val/vqa_acc | (800, 5.0, 0.400), (1600, 10.0, 0.600) |' in result.stdout


def test_wall_clock_continues_from_the_checkpoint_after_a_resume():
    clock = WallClock()
    clock.on_fit_start(None, None)
    time.sleep(0.05)
    state = clock.state_dict()
    resumed = WallClock()
    resumed.load_state_dict(state)
    resumed.on_fit_start(None, None)
    assert resumed.elapsed() >= state['elapsed'] >= 0.05  # a restart would start again from 0
    assert WallClock().elapsed() == 0.0
