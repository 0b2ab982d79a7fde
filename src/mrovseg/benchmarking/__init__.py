"""Benchmarking: build models from the real configs, count FLOPs, time, measure memory, report.

Modules, one idea each: ``build`` (compose the experiment configs, random CLIP weights), ``flops``
(FLOP counts with attention counted explicitly), ``timing``, ``memory`` (peak memory, largest-batch
search), ``measure`` (the benchmark tables), ``train_step`` (one optimizer step outside Lightning),
``step_profile`` (time and FLOPs per part of a step), ``gpu_report`` (the one-command GPU report),
``report`` (rows and markdown), ``environment`` (device, versions, SDPA kernels). The command lines
are ``scripts/benchmark.py``, ``scripts/gpu_report.py`` and ``scripts/profile_step.py``.
"""
