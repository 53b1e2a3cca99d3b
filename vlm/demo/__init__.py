"""`vlm demo`: a local web page for an exported VLM and detection / segmentation checkpoints (Gradio)."""
