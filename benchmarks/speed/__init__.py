"""Speed benchmarks: throughput, memory and scaling, each against a reference measured in the same run.

    python -m benchmarks.speed.run_all [--quick]     # encoder, data, COCO evaluation, decoding, DDP, pruned inference
    python -m benchmarks.speed.gpu_suite --smoke     # what only a GPU measures (tiny sizes on the CPU with --smoke)
    python -m benchmarks.speed.encoder_speed         # and data_speed, coco_eval_speed, decoder_step,
                                                     # generation_speed, ddp_scaling, memory_estimate, vqa_step_time
"""
