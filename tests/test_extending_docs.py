"""docs/extending.md is true: its code blocks (add an encoder, a head, an image-text format) run as written, in
order, as one module, and their own assertions hold."""
import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / 'docs' / 'extending.md'


def test_every_code_block_of_the_extending_guide_runs(monkeypatch):
    blocks = re.findall(r'```python\n(.*?)```', DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    guide = types.ModuleType('extending_guide')  # a real module: timm's register_model looks its caller up
    monkeypatch.setitem(sys.modules, guide.__name__, guide)
    for block in blocks:
        exec(compile(block, str(DOC), 'exec'), guide.__dict__)  # the guide's own code, from this repository
    assert guide.trainer.global_step == 4 and guide.loss.item() > 0
