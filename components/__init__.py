"""Graft's TFX components and module files (import name ``graft.components``; the folder is ``components/``).

Below the pipeline: nothing here imports graft.pipeline, graft.kubeflow or graft.cli. Each component owns the config
section it reads (``*_config.py``, ``image_example_gen/config.py``); graft.pipeline.config assembles them.
"""
