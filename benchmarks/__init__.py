"""Scripts that measure vlm, not part of the installed package (vlm never imports them; tests neither). Run each
from the repository root as a module:

    python -m benchmarks.speed.NAME [--help]         # speed: throughput, memory, scaling against a reference
    python -m benchmarks.experiments.NAME [--help]   # experiments: what a model learns, reaches or gets right

Logic worth testing lives in vlm (e.g. `vlm.evaluation.grounding`, `vlm.evaluation.learning_curves`,
`vlm.encoder.conversion_error`, `vlm.callbacks.PeakMemory`); these scripts are its command lines.
"""
