"""TensorBoard logging through taps (flowgraph/tensorboard.py): scalars, eval points, image grids."""
import subprocess
import sys

from flowgraph.graph import load_graph
from flowgraph.run import Runner
from flowgraph.tensorboard import TensorBoardLogger

IMAGES = """\
format: 1
name: img
variables: {sigma: 0.1, steps: 4}
blocks:
  src: {type: testing.images}
  noise: {type: testing.image_noise, params: {sigma: $sigma}}
  psnr: {type: sink.psnr}
connections: [src.image -> noise.image, noise.image -> psnr.pred, src.image -> psnr.target]
train:
  - {stage: e2e, trainable: [noise], loss: "mse(noise.image, src.image)", steps: $steps, log_every: 1}
evaluate: {sweep: {sigma: [0.0, 0.5]}, metrics: [psnr]}
"""


class FakeWriter:
    def __init__(self):
        self.scalars, self.images, self.closed = [], [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_image(self, tag, img, step):
        self.images.append((tag, tuple(img.shape), step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_logger_writes_losses_metrics_and_image_grids(tmp_path, write_graph):
    r = Runner(load_graph(write_graph(IMAGES)), out=tmp_path / "run", quiet=True)
    fake = FakeWriter()
    tb = TensorBoardLogger(r, writer=fake)
    r.run()
    tb.close()
    tags = {t for t, _, _ in fake.scalars}
    assert {"train/loss", "train/lr", "train/psnr"} <= tags
    assert {"eval/psnr/sigma=0.0", "eval/psnr/sigma=0.5"} <= tags
    assert [s for t, _, s in fake.scalars if t == "train/loss"] == [1, 2, 3, 4]
    tag, shape, step = fake.images[0]
    assert tag == "images/src.image vs noise.image" and shape == (3, 16, 8 * 4) and step == 1
    assert fake.closed


def test_real_event_files_are_written(tmp_path, write_graph):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    r = Runner(load_graph(write_graph(IMAGES)), out=tmp_path / "run", quiet=True)
    tb = TensorBoardLogger(r)
    r.run()
    tb.close()
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert acc.Tags()["images"]


def test_missing_tensorboard_is_one_line(root, tmp_path):
    code = ("import sys; sys.modules['tensorboard'] = None; sys.modules['torch.utils.tensorboard'] = None\n"
            "from flowgraph.cli import main\n"
            f"sys.exit(main(['run', 'tests/graphs/tiny.yaml', '--tensorboard', '--out', r'{tmp_path / 'o'}']))")
    p = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert lines[0].startswith("semflow: error: --tensorboard needs the tensorboard package: pip install")
    assert not (tmp_path / "o").exists()          # refused before any work
