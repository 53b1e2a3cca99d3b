"""Learning experiments: what a model reaches, gets right or looks at (accuracy, grounding, ceilings, transfer,
conversion error, learning curves), not how fast it runs.

    python -m benchmarks.experiments.NAME --help    # caption_ceiling, chat_grounding, conversion_error,
                                                    # learning_curves, pruning_table, transfer_table,
                                                    # vqa_decoder_grounding, vqa_grounding
"""
