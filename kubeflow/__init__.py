"""Graft on Kubeflow Pipelines v2 / Vertex AI Pipelines.

  compile.py    ``create_pipeline(config)`` -> KFP v2 IR: a Vertex PipelineJob (JSON) or a KFP PipelineSpec (YAML)
  spec.py       a compiled file as ``kfp.pipeline_spec`` protos: tasks, executors, dependency order
  local_run.py  executes a compiled spec on this machine, task by task, with each container's exact command
  local_mlmd.py      its ML Metadata store (Vertex vocabulary) and the resolver queries
  local_results.py   what a local run returns
  submit.py     Vertex PipelineJob / KFP run, PipelineJobSchedule / KFP recurring run, local cron / systemd timer
  cron.py       cron expressions, checked once and written for each target
  image.py      what the container image (kubeflow/Dockerfile) must provide; ``python -m graft.kubeflow.image``

Every module is cheap to import (TensorFlow, TFX, KFP and the Google Cloud SDK are imported inside functions).
"""
