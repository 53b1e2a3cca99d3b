"""vlm's packages import only down the layers (pyproject.toml [tool.importlinter]: cli, callbacks, tasks,
evaluation, data, models | language, encoder, layers, io | drawing, errors); deferred imports count too."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = [sys.executable, '-c', 'import sys; from importlinter.cli import lint_imports_command; '
                              'sys.exit(lint_imports_command())', '--config', str(REPO / 'pyproject.toml')]


def _lint(package_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(package_parent)}
    return subprocess.run(LINT, cwd=package_parent, env=env, capture_output=True, text=True, timeout=120)


def test_the_layers_point_down():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Contracts: 1 kept, 0 broken.' in result.stdout


def test_an_import_up_the_layers_is_caught(tmp_path):
    """The contract has teeth: the same package with one deferred import from data up into tasks fails."""
    shutil.copytree(REPO / 'vlm', tmp_path / 'vlm', ignore=shutil.ignore_patterns('__pycache__'))
    texts = tmp_path / 'vlm' / 'data' / 'texts.py'
    texts.write_text(texts.read_text() + '\n\ndef _up():\n    from vlm.tasks import VlmTask  # noqa: F401\n')
    result = _lint(tmp_path)
    assert result.returncode != 0 and 'vlm.data.texts -> vlm.tasks' in result.stdout, result.stdout
