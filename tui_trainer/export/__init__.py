"""Exports of a run into the formats the field uses: Hugging Face weights (hf.py) and TensorBoard logs
(tensorboard.py). Each is imported only by the `gpt-console export` verb that needs it."""
