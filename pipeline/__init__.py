"""The pipeline layer (import name ``graft.pipeline``; the folder is ``pipeline/``).

The assembled config, the one DAG (``dag.py``, which reads nothing) and what it needs resolved (``dag_inputs.py``),
the local runner and its run lock, recovery, run summaries and records, and the report. Imports the components and
the graft root only; graft.kubeflow and graft.cli sit above it.
"""
