"""Reading and writing files: JSON (annotations, results, metrics: `json_files`), images (`images`), checkpoints
(`checkpoints`). The bottom layer of vlm beside `vlm.errors`; import the submodule you need (the image and
checkpoint readers import torch)."""
